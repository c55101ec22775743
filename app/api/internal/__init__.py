"""The internal API the bot's action server calls, authenticated by a service token."""
from __future__ import annotations

import hmac

from apiflask import APIBlueprint
from flask import current_app, request

from app.errors import Unauthorized

bp = APIBlueprint("internal", __name__, url_prefix="/api/internal", tag="Internal (bot)")


@bp.before_request
def require_service_token():
    expected = current_app.config["BOT_SERVICE_TOKEN"]
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # Constant-time comparison: the token guards bookings and help alerts.
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("a valid service token is required", code="invalid_service_token")


# Route modules attach themselves to `bp`; imported last so they see it.
from app.api.internal import faq, handoff  # noqa: E402,F401
from app.api.internal import booking  # noqa: E402,F401
from app.api.internal import help  # noqa
