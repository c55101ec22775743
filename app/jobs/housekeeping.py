"""Old path of housekeeping's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.housekeeping.jobs import purge_expired_idempotency_keys  # noqa: F401
