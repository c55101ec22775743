"""Old path of delivery's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.delivery.jobs import deliver_outbound, sweep_outbox  # noqa: F401
