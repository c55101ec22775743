"""Service-level targets of tickets: due times per priority, and the sweep that flags breaches.

A breach is flagged once per target (compare-and-set on the flag), recorded as an `sla_breach`
event and reported to the street's team leads (admins) on the same event; the console shows the
flag in every queue and in the `breached` view. No SMS goes to the lead: staff have no
conversation in the outbox, and the console is where the lead works.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import and_, case, or_, select, update

from app.core.extensions import db
from app.models import Staff, Ticket, TicketEvent
from app.models.base import utcnow

# (first response, resolution) per priority; config TICKET_SLA overrides some or all of them.
DEFAULT_SLA = {
    "urgent": (timedelta(minutes=5), timedelta(hours=2)),
    "high": (timedelta(minutes=30), timedelta(days=1)),
    "normal": (timedelta(hours=4), timedelta(days=3)),
    "low": (timedelta(days=1), timedelta(days=7)),
}
OPEN_STATUSES = ("open", "pending")


def targets(priority: str) -> tuple[timedelta, timedelta]:
    """(first response, resolution) for a priority, config TICKET_SLA first.

    TICKET_SLA maps a priority to [first_response_minutes, resolution_minutes]; a dict or its JSON text.
    """
    override = current_app.config.get("TICKET_SLA") if has_app_context() else None
    if isinstance(override, str):
        override = json.loads(override) if override.strip() else None
    if override and priority in override:
        first, resolution = override[priority]
        return _as_delta(first), _as_delta(resolution)
    return DEFAULT_SLA[priority]


def _as_delta(value) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(minutes=float(value))


def due_times(*, priority: str, since: datetime) -> tuple[datetime, datetime]:
    first, resolution = targets(priority)
    return since + first, since + resolution


def next_due_expression():
    """What a ticket waits for next: the first response until there is one, then the resolution."""
    return case((Ticket.first_responded_at.is_(None), Ticket.first_response_due_at),
                else_=Ticket.resolution_due_at)


def check_breaches(*, now: datetime | None = None) -> list[tuple[int, str]]:
    """Flag every newly breached target; returns (ticket id, "first_response"|"resolution") pairs."""
    now = now or utcnow()
    flagged: list[tuple[int, str]] = []
    rules = (
        ("first_response", Ticket.first_response_breached,
         and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now)),
        ("resolution", Ticket.resolution_breached, Ticket.resolution_due_at < now),
    )
    for kind, flag, overdue in rules:
        candidates = db.session.scalars(
            select(Ticket.id).where(Ticket.status.in_(OPEN_STATUSES), flag.is_(False), overdue)
        ).all()
        for ticket_id in candidates:
            # Compare-and-set: two sweeps running at once flag (and notify) once.
            won = db.session.execute(
                update(Ticket).where(Ticket.id == ticket_id, flag.is_(False)).values({flag.key: True})
            ).rowcount
            if won:
                _record_breach(ticket_id, kind, now)
                flagged.append((ticket_id, kind))
        db.session.commit()
    return flagged


def _record_breach(ticket_id: int, kind: str, now: datetime) -> None:
    ticket = db.session.get(Ticket, ticket_id)
    leads = db.session.scalars(
        select(Staff).where(Staff.street_id == ticket.street_id, Staff.role == "admin", Staff.active.is_(True))
    ).all()
    label = "首次响应" if kind == "first_response" else "解决"
    due = ticket.first_response_due_at if kind == "first_response" else ticket.resolution_due_at
    names = "、".join(s.display_name for s in leads) or "（无组长）"
    db.session.add(TicketEvent(
        ticket_id=ticket_id, kind="sla_breach", created_at=now,
        body=f"{label}超时（应于 {due.isoformat() if due else '-'} 前），已通知组长：{names}",
        data={"target": kind, "due_at": due.isoformat() if due else None, "notified": [s.id for s in leads]},
    ))


def breached_filter():
    return or_(Ticket.first_response_breached.is_(True), Ticket.resolution_breached.is_(True))
