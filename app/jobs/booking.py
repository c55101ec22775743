"""Booking jobs: the reminder sweeper, which finds due reminders in the database every minute."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import booking_reminders


@every(60)
def sweep_booking_reminders() -> int:
    """Queue every due appointment reminder (the database, not a scheduled job, is the schedule)."""
    return booking_reminders.send_due_reminders()

