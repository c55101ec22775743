"""Hospital appointments: departments, doctors' slots, booking for oneself or family, attendance and reminders.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.booking.appointments import (
    book_slot,
    cancel_appointment,
    get_appointment,
    list_appointments,
    list_departments,
    reschedule_appointment,
    search_free_slots,
)
from app.services.booking.attendance import mark_attended, mark_noshow
from app.services.booking.holds import confirm_hold, get_hold, hold_slot, release_hold
from app.services.booking.patients import RELATIONS, add_patient, list_patients, remove_patient, update_patient
from app.services.booking.schedule_view import day_schedule
from app.services.booking.slots import generate_slots
from app.services.booking.waitlist import (
    accept_offer,
    department_id_of,
    get_entry,
    join_waitlist,
    leave_waitlist,
    list_waitlist,
)
