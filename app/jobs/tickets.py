"""Old path of tickets's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.tickets.jobs import close_resolved_tickets, flag_sla_breaches, offer_unassigned_tickets  # noqa: F401
