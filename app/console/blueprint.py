"""The staff console's blueprint (/console)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
# Browser sessions authenticate this blueprint, so create_app keeps CSRF protection on for it.
