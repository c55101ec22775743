"""Outbox jobs: deliver one message; sweep rows whose job was lost."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import delivery


def deliver_outbound(outbound_id: int) -> None:
    delivery.deliver(outbound_id=outbound_id)


@every(15, queue="outbound")
def sweep_outbox() -> int:
    """A lost job, a dead worker or a flushed Redis delays a message by at most a sweep, never loses it."""
    return delivery.sweep()
