"""Old path of help's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.help.jobs import (  # noqa: F401
    advance_alert,
    send_contact_sms_job,
    sweep_help_alerts,
    tell_contacts_taken,
)
