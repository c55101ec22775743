"""Help-alert jobs on the `escalation` queue: one step of an alert, the sweeper, contact notices."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import help_escalation, help_notices


def advance_alert(alert_id: int, round_: int, step: int) -> bool:
    """Move the alert on from (round, step); a stale or repeated job finds it moved and does nothing."""
    return help_escalation.advance(alert_id=alert_id, round=round_, step=step)


@every(15, queue="escalation")
def sweep_help_alerts() -> dict:
    """The safety net: lost jobs, a dead worker or a flushed Redis delay an alert by one period at most."""
    return help_escalation.sweep()


def tell_contacts_taken(alert_id: int) -> int:
    return help_notices.tell_contacts_taken_now(alert_id=alert_id)


def send_contact_sms_job(phone: str, body: str) -> None:
    help_notices.send_contact_sms(phone=phone, body=body)
