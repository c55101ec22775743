"""The ticker enqueues each periodic sweep once per period, however many tickers run."""
from __future__ import annotations

from app.jobs.periodic import PERIODIC_TASKS, load_task_modules, tick


def test_every_domain_registers_its_sweeps():
    load_task_modules()
    names = {task.name for task in PERIODIC_TASKS}
    assert {"sweep_outbox", "sweep_help_alerts", "purge_expired_idempotency_keys", "generate_upcoming_slots"} <= names
    queues = {task.queue for task in PERIODIC_TASKS}
    assert "escalation" in queues and "outbound" in queues


def test_two_tickers_in_the_same_period_enqueue_each_task_once(app):
    load_task_modules()
    redis = app.extensions["linli_redis"].redis
    first = tick(app, now=1_000_000.0)
    second = tick(app, now=1_000_000.5)  # another ticker, same moment
    assert sorted(first) == sorted(t.name for t in PERIODIC_TASKS)
    assert second == []
    queued = sum(redis.llen(f"rq:queue:{q}") for q in ("default", "outbound", "escalation"))
    assert queued == len(PERIODIC_TASKS)
