"""The staff console (/console): server-rendered pages for the street office's staff, CSRF on every form."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
# Browser sessions authenticate this blueprint, so create_app keeps CSRF protection on for it.

# Route modules attach themselves to `bp`; imported last so they see it.
from app.console import (  # noqa: E402,F401
    access, appointments, auth, help_board, help_chains, knowledge, queue, reports, simulator, team, ticket_detail,
)
