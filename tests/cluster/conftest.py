"""The cluster harness needs root (network namespaces), nginx, socat and redis-server: `make cluster-deps`."""
from __future__ import annotations

import os
import shutil

import pytest

NEEDS = ("ip", "nginx", "socat", "redis-server")


@pytest.fixture(scope="module")
def cluster_ready():
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    problem = (f"missing {', '.join(missing)}: run `make cluster-deps`" if missing
               else None if os.geteuid() == 0 else "network namespaces need root")
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
