"""Linli on several hosts under faults: every message answered once, every alert called, every booking made once or
refused, nothing lost, also when Redis restarts empty. The short form runs in `make test`; the full form
(`make test-cluster`, marker `cluster`) runs longer, heavier traffic and first measures the capacity figures of
docs/deploy.md, the bot's with one and with two Rasa servers among them. A failed run keeps its hosts' logs (the
path is printed)."""
from __future__ import annotations

import pytest

from tests.cluster.cluster import Cluster
from tests.cluster.scenario import alert_rate, rasa_ratio, redis_restart, run, web_rate


def report(title: str, lines: list[str]) -> None:
    print(f"\n== {title}")
    for line in lines:
        print("   " + line)


def faults_and_restart(cluster: Cluster, *, seconds: float, per_second: float, restarted: int) -> None:
    figures, log = run(cluster, seconds=seconds, per_second=per_second)
    report("faults under traffic", log + figures.lines())
    restart, restart_log, lost_jobs = redis_restart(cluster, n=restarted)
    report("Redis restarted empty", restart_log + restart.lines())
    assert (figures.lost, figures.duplicated) == (0, 0), figures
    assert lost_jobs > 0, "no job was waiting in Redis when it restarted: the restart proved nothing"
    assert (restart.lost, restart.duplicated) == (0, 0), restart


@pytest.mark.timeout(900)
def test_short_form_survives_a_dead_web_node_bot_and_worker_a_partition_and_an_empty_redis(cluster_ready):
    with Cluster() as cluster:
        faults_and_restart(cluster, seconds=30, per_second=3, restarted=10)


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_full_form_capacity_bot_scaling_faults_and_an_empty_redis(cluster_ready):
    with Cluster() as cluster:
        web = web_rate(cluster, events=400)
        alerts = alert_rate(cluster, alerts=100)
        one, two = rasa_ratio(cluster, turns=120)
        report("capacity", [
            f"web: {web:.0f} messages/s through the balancer (2 web nodes x 2 sync workers, bot not asked)",
            f"help: {alerts:.1f} alerts/s from press to first call (2 workers)",
            f"bot turns/s: 1 Rasa server {one:.1f}, 2 Rasa servers {two:.1f}, ratio {two / one:.2f}"])
        faults_and_restart(cluster, seconds=90, per_second=6, restarted=30)
