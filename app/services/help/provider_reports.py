"""What a provider that cannot ask us during the call (Aliyun) reports afterwards: keys, call ends, SMS replies.

Twilio asks for the words after a key (Gather), so its acceptance is answered in the call (channels/voice.py).
Aliyun's words after each key were fixed when the call was placed ("we are confirming, an SMS follows"), so
here the key decides, and the contact reads the outcome: confirmed, or taken by someone else.

Not every report is help's alone, as on Twilio's path: a missed check-in's call to the resident themself is care's
(their key 1 is their check-in), and an SMS reply may be a resident's 平安. The route (app/channels/aliyun.py)
asks care first for those, as app/channels/voice.py does, and uses `key_to_take` so that a key reported twice
(VoiceCallReport, then VoiceReport) is taken once.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, Resident
from app.services.help import texts
from app.services.help.alerts import accept_by_sms, answer_call_key, queue_contact_sms, record_call_status
from app.services.help.notices import winner_name
from app.services.help.provider_refs import attempt_of_ref

# Aliyun's call result codes (呼叫状态码) in the words of our attempts (Twilio's CallStatus): answered calls
# end "completed" (a voicemail answers too: never acceptance), the rest say why nobody answered.
ALIYUN_CALL_END = {"200000": "completed", "200001": "completed", "200008": "completed", "200002": "busy",
                   "200003": "no-answer", "200102": "no-answer", "200113": "no-answer"}
KEY_PRESSED = "300000"


@dataclass(frozen=True)
class ProviderReport:
    kind: str  # "key", "end", "progress", "sms_reply"
    attempt_id: int | None = None
    alert_id: int | None = None
    call_id: str | None = None
    digits: str = ""
    call_status: str = ""
    phone: str = ""
    text: str = ""


def read_provider_report(message_type: str, item: dict) -> ProviderReport | None:
    """One pushed report checked against what we sent; None when it names a call or reference we never made."""
    if message_type == "SmsUp":
        phone, content = item.get("phone_number"), item.get("content")
        if not isinstance(phone, str) or not phone.isdigit() or not isinstance(content, str):
            return None
        e164 = f"+86{phone}" if len(phone) == 11 and phone.startswith("1") else f"+{phone}"
        return ProviderReport("sms_reply", phone=e164, text=content[:500])
    attempt_id = attempt_of_ref(str(item.get("out_id") or ""))
    attempt = db.session.get(EscalationStep, attempt_id) if attempt_id else None
    call_id = str(item.get("call_id") or "")
    if attempt is None or attempt.channel != "voice" or attempt.provider != "aliyun" or not call_id:
        return None
    if attempt.external_sid and attempt.external_sid != call_id:
        return None
    digits = str(item.get("dtmf") or "")[:1]
    status = str(item.get("status_code") or "")
    if message_type == "VoiceReport":
        return ProviderReport("end", attempt_id=attempt_id, alert_id=attempt.alert_id, call_id=call_id,
                              digits=digits, call_status=ALIYUN_CALL_END.get(status, "failed"))
    return ProviderReport("key" if digits else "progress", attempt_id=attempt_id, alert_id=attempt.alert_id,
                          call_id=call_id, digits=digits)


def key_to_take(report: ProviderReport) -> str:
    """The key of a call report that still decides something: "1" or "2" while its attempt has taken no key.

    "" for no key, any other key (no choice: the call goes on to its end) and a key taken already (a VoiceCallReport
    and the VoiceReport of the call's end both carry it; Aliyun retries pushes)."""
    if report.kind == "sms_reply" or report.digits not in ("1", "2"):
        return ""
    attempt = db.session.get(EscalationStep, report.attempt_id)
    return "" if attempt.status in ("accepted", "passed") else report.digits


def take_provider_report(report: ProviderReport, *, key_taken: bool = False) -> None:
    """Act on a checked report: a contact's key press, the end of a call, or a contact's SMS reply (acceptance).

    `key_taken`: the caller took the report's key itself (care's check-in on the resident's own call): only the
    end of the call is recorded here."""
    if report.kind == "sms_reply":
        accept_by_sms(from_phone=report.phone, text=report.text)
        return
    attempt = db.session.get(EscalationStep, report.attempt_id)
    digits = "" if key_taken else key_to_take(report)
    if digits:
        _take_key(attempt, digits)
    if report.kind == "end":
        record_call_status(alert_id=attempt.alert_id, attempt_id=attempt.id, call_status=report.call_status,
                           call_sid=report.call_id)


def _take_key(attempt: EscalationStep, digits: str) -> None:
    outcome = answer_call_key(alert_id=attempt.alert_id, attempt_id=attempt.id, digits=digits)
    if digits != "1":
        return
    alert = db.session.get(HelpAlert, attempt.alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    if outcome == "accepted":
        sms = texts.confirm_sms(resident)
    elif alert.status == "accepted":
        sms = texts.taken_sms(resident, winner_name(alert))
    else:
        sms = texts.closed_sms()
    queue_contact_sms(attempt.to_address, sms, key=f"key-{attempt.id}")
