"""Old path of reports's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.reports.jobs import classify_pending, record_intent  # noqa: F401
