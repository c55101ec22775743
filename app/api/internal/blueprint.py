"""The internal API's blueprint: every route on it needs the bot's service token."""
from __future__ import annotations

import hmac

from apiflask import APIBlueprint
from flask import current_app, request

from app.core.errors import Unauthorized

bp = APIBlueprint("internal", __name__, url_prefix="/api/internal", tag="Internal (bot)")


@bp.before_request
def require_service_token():
    expected = current_app.config["BOT_SERVICE_TOKEN"]
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # Constant-time comparison: the token guards bookings and help alerts.
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("a valid service token is required", code="invalid_service_token")
