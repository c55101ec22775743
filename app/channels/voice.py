"""Twilio voice webhooks of help calls: the TwiML a contact hears, their key press, and how the call ended.

Every request must carry a valid X-Twilio-Signature over PUBLIC_BASE_URL + path (we sit behind a
proxy, so the URL Twilio signed is the public one, not the one Flask sees).
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from app.channels.twilio_signature import require_twilio_signature
from app.core.config import setting
from app.services import care
from app.services import help as help_service

# Twilio-only webhooks answering TwiML: kept out of the OpenAPI document.
bp = APIBlueprint("voice", __name__, url_prefix="/voice", enable_openapi=False)
ZH = {"language": "zh-CN"}
GATHER_SECONDS = 8


# Every request must be signed by Twilio.
bp.before_request(require_twilio_signature)


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _ask(response: VoiceResponse, alert_id: int, attempt_id: int, intro: str, prompt: str | None = None) -> None:
    prompt = prompt or help_service.call_prompt()
    response.say(intro, **ZH)
    gather = response.gather(num_digits=1, timeout=GATHER_SECONDS, method="POST",
                             action=f"{_base()}/alerts/{alert_id}/steps/{attempt_id}/gather")
    gather.say(prompt, **ZH)
    gather.say(intro + prompt, **ZH)
    # Reached only when no key was pressed: a person who heard nothing useful, or a voicemail.
    response.say(help_service.call_no_key(), **ZH)
    response.hangup()


def _base() -> str:
    return setting("PUBLIC_BASE_URL").rstrip("/") + bp.url_prefix


@bp.post("/alerts/<int:alert_id>/steps/<int:attempt_id>/twiml")
def step_twiml(alert_id: int, attempt_id: int):
    if care.is_resident_call(alert_id=alert_id, attempt_id=attempt_id):
        return _resident_call(alert_id, attempt_id)
    script = help_service.call_script(alert_id=alert_id, attempt_id=attempt_id)
    response = VoiceResponse()
    if script.state == "ask":
        _ask(response, alert_id, attempt_id, script.intro)
    else:
        response.say(help_service.call_taken(), **ZH)
        response.hangup()
    return _twiml(response)


@bp.post("/alerts/<int:alert_id>/steps/<int:attempt_id>/gather")
def step_gather(alert_id: int, attempt_id: int):
    if care.is_resident_call(alert_id=alert_id, attempt_id=attempt_id):
        return _resident_call(alert_id, attempt_id, digits=request.form.get("Digits", "")[:1])
    outcome = help_service.answer_call_key(alert_id=alert_id, attempt_id=attempt_id,
                                           digits=request.form.get("Digits", "")[:1])
    response = VoiceResponse()
    if outcome == "again":
        script = help_service.call_script(alert_id=alert_id, attempt_id=attempt_id)
        if script.state == "ask":
            _ask(response, alert_id, attempt_id, script.intro)
            return _twiml(response)
        outcome = "taken"
    spoken = {"accepted": lambda: help_service.accepted_script(alert_id=alert_id),
              "taken": help_service.call_taken, "passed": help_service.call_passed}[outcome]()
    response.say(spoken, **ZH)
    response.hangup()
    return _twiml(response)


def _resident_call(alert_id: int, attempt_id: int, digits: str | None = None) -> Response:
    """A missed check-in calling the resident themself: key 1 is their check-in (care), not an acceptance."""
    response = VoiceResponse()
    spoken = care.resident_key(alert_id=alert_id, attempt_id=attempt_id, digits=digits) if digits else None
    if spoken:
        response.say(spoken, **ZH)
        response.hangup()
    else:
        intro, prompt = care.resident_script(alert_id=alert_id)
        _ask(response, alert_id, attempt_id, intro, prompt)
    return _twiml(response)


@bp.post("/alerts/<int:alert_id>/steps/<int:attempt_id>/status")
def step_status(alert_id: int, attempt_id: int):
    help_service.record_call_status(alert_id=alert_id, attempt_id=attempt_id,
                                    call_status=request.form.get("CallStatus", "")[:20],
                                    call_sid=request.form.get("CallSid"))
    return Response(status=204)
