"""The staff console (/console): server-rendered pages for the street office's staff, CSRF on every form."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
# Browser sessions authenticate this blueprint, so create_app keeps CSRF protection on for it.
bp.uses_csrf = True

# Route modules attach themselves to `bp`; imported last so they see it.
from app.console import access, auth, knowledge, queue, simulator, team, ticket_detail  # noqa: E402,F401
from app.console import reports  # noqa: E402,F401

try:  # the help board is written alongside; the console works without it
    from app.console import help_board  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "app.console.help_board":
        raise
