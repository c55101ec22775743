"""Slot generation from doctors' schedules, kept ahead of the release window."""
from __future__ import annotations

from datetime import date

from flask import current_app

from app.jobs.periodic import every
from app.services import slots


@every(3600)
def generate_upcoming_slots() -> int:
    """Make sure slots exist for the release window plus a week of margin."""
    days = int(current_app.config.get("BOOKING_RELEASE_DAYS", 7)) + 7
    return slots.generate_slots(start=date.today(), days=days)
