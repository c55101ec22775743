"""Staff record whether a patient came; repeated no-shows suspend the patient's booking.

A marked visit keeps its seat (it was used), so marking never changes a slot's count. Staff mark the visits their
street's residents booked; another street's visit is not found, as if it did not exist.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.core.errors import InvalidTransition, NotFound
from app.core.extensions import db
from app.models import Appointment, Resident, Slot
from app.models.base import utcnow
from app.services.booking.appointments import lock_appointment, lock_patient, one_transaction
from app.services.booking.calendar import local_day
from app.services.residents import street_of

NOSHOW_LIMIT = 3
NOSHOW_WINDOW = timedelta(days=90)
SUSPENSION = timedelta(days=90)


def mark_attended(*, appointment_id: int, street_id: int | None = None, now: datetime | None = None) -> Appointment:
    """Record a visit; possible from the morning of its day, as patients check in early.

    `street_id`: the marking staff member's street; None only for the trusted service API (any street)."""
    now = now or utcnow()
    with one_transaction():
        appointment = _booked(appointment_id, street_id)
        if local_day(now) < appointment.local_date:
            raise InvalidTransition("a visit can be marked on its day", code="too_early")
        appointment.status, appointment.marked_at = "fulfilled", now
    return appointment


def mark_noshow(*, appointment_id: int, street_id: int | None = None, now: datetime | None = None) -> Appointment:
    """Record a missed visit; the third within 90 days suspends the patient's booking for 90 days.

    `street_id` as for mark_attended."""
    now = now or utcnow()
    with one_transaction():
        unlocked = _of_street(db.session.get(Appointment, appointment_id), street_id)
        # Patient before appointment: the lock order every booking change follows.
        patient = lock_patient(patient_id=unlocked.patient_id)
        appointment = _booked(appointment_id, street_id)
        if now < appointment.slot.start_at:
            raise InvalidTransition("a visit can be missed only once its time has come", code="too_early")
        appointment.status, appointment.marked_at = "noshow", now
        db.session.flush()
        if _recent_noshows(patient.id, now) >= NOSHOW_LIMIT:
            until = now + SUSPENSION
            patient.suspended_until = max(patient.suspended_until or until, until)
    return appointment


def _of_street(appointment: Appointment | None, street_id: int | None) -> Appointment:
    # Another street's visit answers as a missing one: its id is not confirmed either.
    if appointment is None or (
            street_id is not None
            and street_of(db.session.get(Resident, appointment.booked_by_resident_id)) != street_id):
        raise NotFound("no such appointment")
    return appointment


def _booked(appointment_id: int, street_id: int | None) -> Appointment:
    appointment = _of_street(lock_appointment(appointment_id=appointment_id), street_id)
    if appointment.status != "booked":
        raise InvalidTransition(f"the appointment is {appointment.status}")
    return appointment


def _recent_noshows(patient_id: int, now: datetime) -> int:
    # Counted by the visit's time, so marking an old no-show late does not stretch the window.
    return db.session.scalar(
        select(func.count()).select_from(Appointment).join(Appointment.slot).where(
            Appointment.patient_id == patient_id, Appointment.status == "noshow",
            Slot.start_at > now - NOSHOW_WINDOW)
    )
