"""The internal API the bot's action server calls, authenticated by a service token."""
from app.api.internal import booking, faq, handoff, help  # noqa: F401  (each module adds its routes to `bp`)
from app.api.internal.blueprint import bp, require_service_token  # noqa: F401
