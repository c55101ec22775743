""".ci/services waits for the machine's PostgreSQL and Redis before CI's tests, and starts them only when they are down.

A CI run once failed after 1 s: pg_isready found PostgreSQL not yet accepting connections, and pg_ctlcluster, asked to
start a server that was already starting, said "Cluster is already running." and exited 2. These tests run the real
script with stand-ins for the machine's pg_isready, pg_ctlcluster and redis-cli first on PATH, which record their calls.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / ".ci" / "services"


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, *, ready_after: int, cluster_running: bool, grace: int = 5, start: int = 5):
    """Run .ci/services where pg_isready fails its first `ready_after` calls; return (result, recorded calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    count = tmp_path / "pg_isready.count"
    count.write_text("0")
    _tool(bin_dir, "pg_isready", f'n=$(( $(cat {count}) + 1 )); echo $n > {count}; '
                                 f'[ $n -gt {ready_after} ] && exit 0; echo "rejecting connections"; exit 1')
    _tool(bin_dir, "pg_ctlcluster", f'''case "$*" in
  *status*) exit {0 if cluster_running else 3} ;;
  *start*) {"echo 'Cluster is already running.'; exit 2" if cluster_running else "exit 0"} ;;
esac''')
    _tool(bin_dir, "redis-cli", "echo PONG")
    _tool(bin_dir, "redis-server", "exit 0")
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "PG_GRACE_SECONDS": str(grace), "PG_START_SECONDS": str(start)}
    result = subprocess.run(["bash", str(SERVICES)], env=env, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines()


def test_a_server_still_starting_is_waited_for_not_started_again(tmp_path):
    result, calls = _run(tmp_path, ready_after=2, cluster_running=True)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith("pg_ctlcluster")], calls
    assert [c for c in calls if c.startswith("pg_isready")] == ["pg_isready -h 127.0.0.1 -p 5432 -q"] * 3


def test_a_running_server_slow_past_the_grace_is_not_started_and_is_waited_for(tmp_path):
    result, calls = _run(tmp_path, ready_after=3, cluster_running=True, grace=1)
    assert result.returncode == 0, result.stderr
    pg_ctl = [c for c in calls if c.startswith("pg_ctlcluster")]
    assert len(pg_ctl) == 1 and pg_ctl[0].endswith("main status"), pg_ctl


def test_a_stopped_server_is_started_then_waited_for(tmp_path):
    result, calls = _run(tmp_path, ready_after=2, cluster_running=False, grace=1)
    assert result.returncode == 0, result.stderr
    pg_ctl = [c for c in calls if c.startswith("pg_ctlcluster")]
    assert len(pg_ctl) == 2 and pg_ctl[1].endswith("main start"), pg_ctl


def test_a_server_that_never_answers_fails_the_run_and_says_so(tmp_path):
    result, _ = _run(tmp_path, ready_after=10_000, cluster_running=True, grace=1, start=2)
    assert result.returncode != 0
    assert "PostgreSQL is not answering" in result.stderr
