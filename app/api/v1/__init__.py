"""The resident mobile API (/api/v1): the backend of the residents' app and the official account's H5 pages.

See docs/mobile-api.md. Every route but sign-in needs a resident's access token; lists page with
opaque cursors; writes accept an Idempotency-Key.
"""
from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint("mobile_v1", __name__, url_prefix="/api/v1", tag="Mobile")

# The routes register themselves on `bp`; imported after it exists.
from app.api.v1 import (  # noqa: E402,F401
    appointments, auth, family, help, me, notifications, requests,
)
