"""The one check of Twilio's webhook signature, shared by the SMS and voice webhooks."""
from __future__ import annotations

from flask import request

from app.core.config import setting
from app.core.errors import Forbidden
from integrations.twilio import validate_twilio_request


def require_twilio_signature() -> None:
    """Refuse the request unless X-Twilio-Signature signs PUBLIC_BASE_URL + path + query and the form.

    Behind a proxy Flask sees the internal address; Twilio signed the public one, so the URL is rebuilt from
    PUBLIC_BASE_URL rather than taken from the request.
    """
    url = setting("PUBLIC_BASE_URL").rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode()
    if not validate_twilio_request(setting("TWILIO_AUTH_TOKEN"), url, request.form,
                                   request.headers.get("X-Twilio-Signature")):
        raise Forbidden("invalid Twilio signature", code="invalid_twilio_signature")
