"""Housekeeping: expired records that only take space."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import idempotency


@every(3600)
def purge_expired_idempotency_keys() -> int:
    return idempotency.purge_expired()
