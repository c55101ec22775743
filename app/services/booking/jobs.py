"""Booking jobs: the reminder sweeper (the database, not a scheduled job, is the schedule), slot generation, and the
end of holds and waitlist offers past their time."""
from __future__ import annotations

from datetime import date

from app.core.config import setting
from app.core.tasks import job
from app.services.booking import holds, reminders, slots


@job("booking.sweep_reminders", every=60)
def sweep_booking_reminders() -> int:
    """Queue every due appointment reminder."""
    return reminders.send_due_reminders()


@job("booking.generate_upcoming_slots", every=3600)
def generate_upcoming_slots() -> int:
    """Make sure slots exist for the release window plus a week of margin."""
    return slots.generate_slots(start=date.today(), days=setting("BOOKING_RELEASE_DAYS") + 7)


@job("booking.release_expired_holds", every=30)
def release_expired_holds() -> int:
    """End holds and offers past their time (their seats to the next in line), and send offer notices not sent."""
    return holds.release_expired_holds()
