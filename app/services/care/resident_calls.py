"""The resident's own call of a missed check-in: key 1 checks in (and stops the chain), key 2 asks for help."""
from __future__ import annotations

from datetime import datetime

from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, Resident
from app.services import help as help_service
from app.services.care import texts
from app.services.care.checkins import check_in


def _attempt(alert_id: int, attempt_id: int) -> tuple[HelpAlert, EscalationStep] | None:
    attempt = db.session.get(EscalationStep, attempt_id)
    alert = db.session.get(HelpAlert, alert_id)
    if attempt is None or alert is None or attempt.alert_id != alert_id:
        return None
    return alert, attempt


def is_resident_call(*, alert_id: int, attempt_id: int) -> bool:
    """True for the call a missed check-in places to the resident (their attempt has no contact: a stand-in)."""
    found = _attempt(alert_id, attempt_id)
    if found is None:
        return False
    alert, attempt = found
    resident = db.session.get(Resident, alert.resident_id)
    return (alert.source == "checkin" and alert.lead_resident and attempt.contact_id is None
            and attempt.to_address == resident.phone)


def resident_script(*, alert_id: int) -> tuple[str, str]:
    resident = db.session.get(Resident, db.session.get(HelpAlert, alert_id).resident_id)
    return texts.resident_call_intro(resident), texts.resident_call_prompt()


def resident_key(*, alert_id: int, attempt_id: int, digits: str, now: datetime | None = None) -> str | None:
    """Key 1: checked in, what to say. Key 2: the chain goes on at once. Anything else: None (ask again)."""
    alert, attempt = _attempt(alert_id, attempt_id)
    if digits == "1":
        attempt.status = "accepted"
        db.session.commit()
        check_in(resident_id=alert.resident_id, via="call", now=now)
        return texts.resident_call_thanks()
    if digits == "2":
        help_service.answer_call_key(alert_id=alert_id, attempt_id=attempt_id, digits="2", now=now)
        return texts.resident_call_help()
    return None
