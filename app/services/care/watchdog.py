"""The escalation watchdog: alerts whose next move is overdue by more than 5 minutes (a machine that stopped moving):
an escalating alert's step, or an accepted, unresolved alert's re-alert (care.realert_accepted did not run)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.core.config import setting
from app.core.extensions import db
from app.models import HelpAlert, Resident, Ticket
from app.models.base import utcnow

OVERDUE_AFTER = timedelta(minutes=5)


def overdue_steps(*, street_id: int | None = None, now: datetime | None = None, limit: int = 50) -> list[dict]:
    """Moves overdue by more than 5 minutes, most overdue first: `kind` "step" (an escalating alert's step was due)
    or "realert" (an alert accepted longer ago than HELP_REALERT_MINUTES + 5 minutes and not re-alerted)."""
    now = now or utcnow()
    realert_after = timedelta(minutes=setting("HELP_REALERT_MINUTES"))
    steps = (select(HelpAlert, Resident.name).join(Resident, Resident.id == HelpAlert.resident_id)
             .where(HelpAlert.status == "escalating", HelpAlert.step_due_at < now - OVERDUE_AFTER)
             .order_by(HelpAlert.step_due_at).limit(limit))
    # A re-alert reopens the alert (status escalating, accepted_at cleared): still accepted means it never came.
    realerts = (select(HelpAlert, Resident.name).join(Resident, Resident.id == HelpAlert.resident_id)
                .where(HelpAlert.status == "accepted",
                       HelpAlert.accepted_at < now - realert_after - OVERDUE_AFTER)
                .order_by(HelpAlert.accepted_at).limit(limit))
    if street_id is not None:
        steps = steps.join(Ticket, Ticket.id == HelpAlert.ticket_id).where(Ticket.street_id == street_id)
        realerts = realerts.join(Ticket, Ticket.id == HelpAlert.ticket_id).where(Ticket.street_id == street_id)
    found = [("step", alert, name, alert.step_due_at) for alert, name in db.session.execute(steps).all()]
    found += [("realert", alert, name, alert.accepted_at + realert_after)
              for alert, name in db.session.execute(realerts).all()]
    db.session.rollback()
    found.sort(key=lambda row: row[3])
    return [{"alert_id": alert.id, "kind": kind, "resident": name, "round": alert.round, "step": alert.step,
             "due_at": due.isoformat(), "overdue_seconds": int((now - due).total_seconds())}
            for kind, alert, name, due in found[:limit]]
