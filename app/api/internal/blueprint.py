"""The internal API's blueprint: every route on it needs the bot's service token."""
from __future__ import annotations

from apiflask import APIBlueprint

from app.core.service_token import require_service_token

bp = APIBlueprint("internal", __name__, url_prefix="/api/internal", tag="Internal (bot)")


bp.before_request(require_service_token)
