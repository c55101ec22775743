"""Tickets: opened when the bot cannot help, a help alert fires or a delivery fails; answered by staff."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Ticket, TicketEvent
from app.models.base import utcnow

# (first response, resolution) per priority; overridable with config TICKET_SLA.
DEFAULT_SLA = {
    "urgent": (timedelta(minutes=5), timedelta(hours=2)),
    "high": (timedelta(minutes=30), timedelta(days=1)),
    "normal": (timedelta(hours=4), timedelta(days=3)),
    "low": (timedelta(days=1), timedelta(days=7)),
}
OPEN_STATUSES = ("open", "pending")


def open_ticket_for_conversation(*, conversation_id: int) -> Ticket | None:
    return db.session.scalar(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN_STATUSES))
    )


def open_ticket(*, street_id: int, source: str, subject: str, priority: str = "normal", category: str = "general",
                conversation_id: int | None = None, resident_id: int | None = None, body: str = "",
                now: datetime | None = None) -> Ticket:
    """Open a ticket, or return the conversation's open one (one open ticket per conversation)."""
    if conversation_id is not None:
        existing = open_ticket_for_conversation(conversation_id=conversation_id)
        if existing:
            return existing
    now = now or utcnow()
    first_response, resolution = DEFAULT_SLA[priority]
    ticket = Ticket(
        street_id=street_id, source=source, subject=subject[:200], priority=priority, category=category,
        conversation_id=conversation_id, resident_id=resident_id, status="open",
        first_response_due_at=now + first_response, resolution_due_at=now + resolution, created_at=now,
    )
    db.session.add(ticket)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent request opened it first; the partial unique index decided
        db.session.rollback()
        existing = open_ticket_for_conversation(conversation_id=conversation_id)
        if existing is None:
            raise
        return existing
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", body=body,
                               data={"to": "open", "source": source}, created_at=now))
    db.session.commit()
    return ticket


def add_event(*, ticket_id: int, kind: str, body: str = "", data: dict | None = None, staff_id: int | None = None,
              commit: bool = True) -> TicketEvent:
    """Append to a ticket's timeline."""
    event = TicketEvent(ticket_id=ticket_id, kind=kind, body=body, data=data, staff_id=staff_id)
    db.session.add(event)
    if commit:
        db.session.commit()
    return event
