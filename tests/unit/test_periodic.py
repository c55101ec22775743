"""The ticker enqueues each periodic sweep once per period, however many tickers run."""
from __future__ import annotations

from app.core.tasks import periodic, tick


def test_every_domain_registers_its_sweeps():
    names = {task.name for task in periodic()}
    assert {"delivery.sweep_outbox", "help.sweep_alerts", "housekeeping.purge_idempotency_keys",
            "booking.generate_upcoming_slots"} <= names
    queues = {task.queue for task in periodic()}
    assert "escalation" in queues and "outbound" in queues


def test_two_tickers_in_the_same_period_enqueue_each_task_once(app):
    redis = app.extensions["linli_redis"].redis
    first = tick(app, now=1_000_000.0)
    second = tick(app, now=1_000_000.5)  # another ticker, same moment
    assert sorted(first) == sorted(t.name for t in periodic())
    assert second == []
    queued = sum(redis.llen(f"rq:queue:{q}") for q in ("default", "outbound", "escalation"))
    assert queued == len(periodic())
