"""Read models of help alerts for the console board: open alerts of a street with their timelines."""
from __future__ import annotations

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, HelpContact, HelpPress, Resident, Ticket, TicketEvent
from app.services.help.chains import chain_of
from app.services.help.notices import winner_name

STATUS_LABELS = {"escalating": "呼叫中", "accepted": "已有人接受", "resolved": "已结束", "cancelled": "已取消"}


def open_alerts(*, street_id: int) -> list[dict]:
    """The street's open alerts, alarms first, then oldest first, each with its chain position and timeline."""
    alerts = db.session.scalars(
        select(HelpAlert).join(Ticket, Ticket.id == HelpAlert.ticket_id)
        .where(Ticket.street_id == street_id, HelpAlert.status.in_(("escalating", "accepted")))
        .order_by(HelpAlert.alarm.desc(), HelpAlert.created_at)
    ).all()
    return [describe(alert) for alert in alerts]


def describe(alert: HelpAlert) -> dict:
    resident = db.session.get(Resident, alert.resident_id)
    chain = chain_of(resident_id=alert.resident_id)
    current = chain[alert.step - 1] if alert.status == "escalating" and 0 < alert.step <= len(chain) else None
    presses = db.session.scalar(select(func.count(HelpPress.id)).where(HelpPress.alert_id == alert.id))
    events = db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == alert.ticket_id).order_by(TicketEvent.id)
    ).all() if alert.ticket_id else []
    attempts = db.session.execute(
        select(EscalationStep, HelpContact.name).outerjoin(HelpContact, HelpContact.id == EscalationStep.contact_id)
        .where(EscalationStep.alert_id == alert.id).order_by(EscalationStep.id)
    ).all()
    return {
        "id": alert.id,
        "status": alert.status,
        "status_label": STATUS_LABELS[alert.status],
        "alarm": alert.alarm,
        "round": alert.round,
        "step": alert.step,
        "chain_length": len(chain),
        "step_due_at": _iso(alert.step_due_at),
        "created_at": _iso(alert.created_at),
        "accepted_at": _iso(alert.accepted_at),
        "accepted_by": winner_name(alert) if alert.status == "accepted" else None,
        "current_contact": current.name if current else None,
        "presses": presses,
        "ticket_id": alert.ticket_id,
        "resident": {"id": resident.id, "name": resident.name, "address": resident.address, "phone": resident.phone},
        "attempts": [{"round": a.round, "step": a.step, "contact": name, "channel": a.channel, "status": a.status}
                     for a, name in attempts],
        "timeline": [{"at": _iso(e.created_at), "kind": e.kind, "body": e.body, "staff_id": e.staff_id}
                     for e in events if e.body],
    }


def _iso(value):
    return value.isoformat() if value else None
