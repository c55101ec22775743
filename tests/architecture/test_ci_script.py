""".ci/run sets CI before the tests: the checks that fail rather than skip in CI (the cluster harness without root or
its tools, nginx's production setup, the proxy's client address) would otherwise skip there without a word."""
from __future__ import annotations

import re
from pathlib import Path

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_run_exports_ci_before_it_runs_the_tests():
    script = CI_RUN.read_text()
    exported = re.search(r'^export CI="\$\{CI:-1\}"$', script, re.M)
    assert exported, ".ci/run must export CI (tests/cluster/conftest.py fails instead of skipping only when set)"
    assert exported.start() < script.index("\nmake test")
