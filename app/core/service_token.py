"""The bot's (and back office's) service token: `Authorization: Bearer <token>`, compared in constant time."""
from __future__ import annotations

import hmac

from flask import current_app, request

from app.core.errors import Unauthorized


def require_service_token() -> None:
    """Refuse the request unless it carries the configured token under the Bearer scheme (RFC 6750)."""
    expected = current_app.config["BOT_SERVICE_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the token guards bookings and help alerts.
    if scheme != "Bearer" or not given.strip() or not expected \
            or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized("a valid service token is required", code="invalid_service_token")
