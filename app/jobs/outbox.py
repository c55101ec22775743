"""Outbox jobs: deliver one message; sweep rows whose job was lost."""
from __future__ import annotations

from app.services import delivery


def deliver_outbound(outbound_id: int) -> None:
    delivery.deliver(outbound_id=outbound_id)
