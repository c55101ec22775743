"""Help-alert jobs on the `escalation` queue: one step of an alert, the sweeper, contact notices."""
from __future__ import annotations

from app.core.tasks import job
from app.services.help import escalation, notices


@job("help.advance_alert", queue="escalation")
def advance_alert(alert_id: int, round_: int, step: int) -> bool:
    """Move the alert on from (round, step); a stale or repeated job finds it moved and does nothing."""
    return escalation.advance(alert_id=alert_id, round=round_, step=step)


@job("help.place_attempts", queue="escalation")
def place_attempts(step_ids: list[int]) -> int:
    """A chunk of a wave's claimed attempts (escalation.start_many); each goes out once, whoever runs it."""
    return escalation.place_many(step_ids=step_ids)


@job("help.tell_residents", queue="outbound")
def tell_residents(alert_ids: list[int], key: str) -> int:
    """A wave's notices to the residents (outbound: never ahead of a call)."""
    return escalation.tell_residents(alert_ids=alert_ids, key=key)


@job("help.sweep_alerts", queue="escalation", every=15)
def sweep_help_alerts() -> dict:
    """The safety net: lost jobs, a dead worker or a flushed Redis delay an alert by one period at most."""
    return escalation.sweep()


@job("help.tell_contacts_taken", queue="escalation")
def tell_contacts_taken(alert_id: int) -> int:
    return notices.tell_contacts_taken_now(alert_id=alert_id)


@job("help.send_contact_sms", queue="escalation")
def send_contact_sms_job(phone: str, body: str, template: str | None = None, params: dict | None = None) -> None:
    # template and params: for providers that send only approved templates (a job queued before them has none).
    notices.send_contact_sms(phone=phone, body=body, template=template, params=params)


@job("help.tell_family", queue="outbound")
def tell_family(alert_id: int, event: str) -> int:
    """Family contacts' notices (WeChat, else SMS) of an alert raised or accepted (outbound: never ahead of a call)."""
    return notices.tell_family(alert_id=alert_id, event=event)
