"""The harness's hosts: a killed run's namespaces and processes are gone after the next start, and `close()` leaves
nothing behind. (Never run beside a cluster run on the same machine: starting removes every `lnc-` namespace.)"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.cluster.hosts import BRIDGE, Network, ip, namespaces


def links() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").stdout.splitlines()
            if line.split(":")[1].strip().startswith("lnc-")]


def test_a_killed_runs_hosts_are_removed_at_the_next_start_and_close_leaves_nothing(cluster_ready, tmp_path):
    # A run killed half-way: its network and a process on one of its hosts are left behind.
    stale = Network()
    host = stale.add("web1", 11)
    left = host.spawn([sys.executable, "-c", "import time; time.sleep(600)"], env=dict(os.environ), cwd=str(tmp_path),
                      log=str(tmp_path / "left.log"))
    assert namespaces() == ["lnc-web1"]

    fresh = Network()
    try:
        assert left.wait(10) == -9  # killed by the new run's start
        assert namespaces() == []
        one, two = fresh.add("web1", 11), fresh.add("redis", 40)
        one.run("ip", "link", "show", "eth0")  # the new host is usable under the old name
        reached = subprocess.run(["ip", "netns", "exec", one.netns, sys.executable, "-c",
                                  f"import socket; socket.create_connection(('{two.address}', 9), 2)"],
                                 capture_output=True, text=True)
        assert "ConnectionRefused" in reached.stderr  # the other host answered (with a refusal): they are linked
    finally:
        fresh.close()
    assert namespaces() == [] and links() == [] and BRIDGE not in links()
