"""The urgent ticket behind every help alert, and the timeline entries each step writes on it."""
from __future__ import annotations

from app.core.extensions import db
from app.models import HelpAlert, Resident
from app.models.base import utcnow
from app.services import residents, tickets
from app.services.help import texts


def open_alert_ticket(alert: HelpAlert, resident: Resident, *, now=None) -> int:
    """Open the alert's urgent ticket; commits (together with whatever the session holds)."""
    ticket = tickets.open_ticket(
        street_id=residents.street_of(resident), source="help_alert", priority="urgent", category="help",
        subject=f"一键求助：{texts.who(resident)}", resident_id=resident.id, now=now,
        body=f"求助来源：{alert.source}",
    )
    return ticket.id


def ensure_ticket(alert: HelpAlert, resident: Resident) -> int:
    """The alert's ticket, opened here if the process that raised it died before linking one."""
    if alert.ticket_id is not None:
        return alert.ticket_id
    ticket_id = open_alert_ticket(alert, resident)
    alert.ticket_id = ticket_id
    db.session.commit()
    return ticket_id


def record(ticket_id: int | None, body: str, *, data: dict | None = None, staff_id: int | None = None,
           kind: str = "alert_step") -> None:
    """Add a timeline entry to the session; the caller's commit writes it with the change it describes."""
    if ticket_id is not None:
        tickets.add_event(ticket_id=ticket_id, kind=kind, body=body, data=data, staff_id=staff_id, commit=False)


def record_many(entries: list[tuple[int | None, str, dict | None]], *, now=None) -> None:
    """record() for many (ticket id, body, data) at once: one statement; the caller's commit writes them."""
    tickets.add_events(events=[{"ticket_id": t, "kind": "alert_step", "body": body, "data": data,
                                "created_at": now or utcnow()} for t, body, data in entries if t is not None])
