"""The escalation watchdog: alerts whose step is overdue by more than 5 minutes (a machine that stopped moving)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.core.extensions import db
from app.models import HelpAlert, Resident, Ticket
from app.models.base import utcnow

OVERDUE_AFTER = timedelta(minutes=5)


def overdue_steps(*, street_id: int | None = None, now: datetime | None = None, limit: int = 50) -> list[dict]:
    """Escalating alerts whose current step was due more than 5 minutes ago, most overdue first."""
    now = now or utcnow()
    query = (select(HelpAlert, Resident.name).join(Resident, Resident.id == HelpAlert.resident_id)
             .where(HelpAlert.status == "escalating", HelpAlert.step_due_at < now - OVERDUE_AFTER)
             .order_by(HelpAlert.step_due_at).limit(limit))
    if street_id is not None:
        query = query.join(Ticket, Ticket.id == HelpAlert.ticket_id).where(Ticket.street_id == street_id)
    rows = db.session.execute(query).all()
    db.session.rollback()
    return [{"alert_id": alert.id, "resident": name, "round": alert.round, "step": alert.step,
             "due_at": alert.step_due_at.isoformat(),
             "overdue_seconds": int((now - alert.step_due_at).total_seconds())} for alert, name in rows]
