"""The SMS hotline's Twilio webhooks: an inbound text, and delivery status of the texts we sent."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, current_app, request

from app.errors import Forbidden
from app.services import conversations, delivery
from integrations.twilio import validate_twilio_request

# Vendor webhooks speak XML and form posts, not JSON: kept out of the OpenAPI document.
bp = APIBlueprint("sms", __name__, enable_openapi=False)

# Replies go through the outbox, so the webhook answers with an empty TwiML document.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _require_twilio_signature() -> None:
    # Behind a proxy request.url is the internal address; Twilio signed the public one.
    url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.full_path.rstrip("?")
    if not validate_twilio_request(current_app.config.get("TWILIO_AUTH_TOKEN", ""), url, request.form,
                                   request.headers.get("X-Twilio-Signature")):
        raise Forbidden("invalid Twilio signature", code="bad_signature")


@bp.post("/sms")
def receive():
    _require_twilio_signature()
    form = request.form
    if form.get("MessageSid") and form.get("From"):
        conversations.receive(channel="sms", external_id=form["MessageSid"][:80], address=form["From"][:64],
                              text=form.get("Body", "").strip()[:2000])
    return Response(EMPTY_TWIML, mimetype="application/xml")


@bp.post("/sms/status")
def status():
    _require_twilio_signature()
    form = request.form
    if form.get("MessageSid") and form.get("MessageStatus"):
        delivery.record_status(external_id=form["MessageSid"], status=form["MessageStatus"],
                               error_code=form.get("ErrorCode"))
    return Response(status=204)
