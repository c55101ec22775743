"""The SMS hotline's Twilio webhooks: an inbound text, and delivery status of the texts we sent."""
from __future__ import annotations

import re

from apiflask import APIBlueprint
from flask import Response, request

from app.channels.twilio_signature import require_twilio_signature
from app.core.errors import ValidationFailed
from app.services import conversations, delivery

# Vendor webhooks speak XML and form posts, not JSON: kept out of the OpenAPI document.
bp = APIBlueprint("sms", __name__, enable_openapi=False)

# Replies go through the outbox, so the webhook answers with an empty TwiML document.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# Twilio sends senders in E.164; anything else would become a resident no reply can reach.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _field(name: str, limit: int) -> str:
    # PostgreSQL refuses NUL in text: dropped here so the resident's message is kept, not refused.
    return request.form.get(name, "").replace("\x00", "").strip()[:limit]


@bp.post("/sms")
def receive():
    require_twilio_signature()
    sid, sender = _field("MessageSid", 80), _field("From", 64)
    if sender and not E164.match(sender):
        raise ValidationFailed("From is not an E.164 phone number", code="invalid_sender")
    if sid and sender:
        conversations.receive(channel="sms", external_id=sid, address=sender, text=_field("Body", 2000))
    return Response(EMPTY_TWIML, mimetype="application/xml")


@bp.post("/sms/status")
def status():
    require_twilio_signature()
    form = request.form
    if form.get("MessageSid") and form.get("MessageStatus"):
        delivery.record_status(external_id=_field("MessageSid", 80), status=_field("MessageStatus", 20),
                               error_code=_field("ErrorCode", 10) or None)
    return Response(status=204)
