"""The resident mobile API's blueprint (/api/v1)."""
from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint("mobile_v1", __name__, url_prefix="/api/v1", tag="Mobile")
