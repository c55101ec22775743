"""Delivery jobs: send one outbox row; sweep rows whose job was lost."""
from __future__ import annotations

from app.core.tasks import job
from app.services.delivery import sending


@job("delivery.deliver", queue="outbound")
def deliver_outbound(outbound_id: int) -> None:
    sending.deliver(outbound_id=outbound_id)


@job("delivery.sweep_outbox", queue="outbound", every=15)
def sweep_outbox() -> int:
    """A lost job, a dead worker or a flushed Redis delays a message by at most a sweep, never loses it."""
    return sending.sweep()
