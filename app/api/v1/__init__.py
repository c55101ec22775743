"""The resident mobile API (/api/v1): the backend of the residents' app and the official account's H5 pages.

See docs/mobile-api.md. Every route but sign-in needs a resident's access token; lists page with
opaque cursors; writes accept an Idempotency-Key.
"""
from app.api.v1 import (  # noqa: F401  (each module adds its routes to `bp`)
    appointments,
    auth,
    family,
    followups,
    help,
    me,
    notifications,
    requests,
)
from app.api.v1.blueprint import bp  # noqa: F401
