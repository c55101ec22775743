"""Old path of booking's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.booking.jobs import sweep_booking_reminders  # noqa: F401
