"""Housekeeping jobs: expired records that only take space."""
from __future__ import annotations

from app.core import idempotency
from app.core.tasks import job


@job("housekeeping.purge_idempotency_keys", every=3600)
def purge_expired_idempotency_keys() -> int:
    return idempotency.purge_expired()
