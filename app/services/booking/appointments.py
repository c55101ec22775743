"""Hospital appointments: finding free slots, booking, cancelling and rescheduling seats.

A seat is taken by one guarded UPDATE (booked_count + held_count < capacity) in the same transaction that picks
the seat number and inserts the appointment; the CHECK on slots and the partial unique indexes on
appointments are the last word, so no interleaving of requests can hand out a seat twice.
Row locks are always taken in the order patient, resident, appointment, hold, waitlist entries, slots by id,
so transactions never wait on each other in a circle (seats.py). A seat given back goes to the waitlist first.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, with_expression

from app.core.config import setting
from app.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Appointment, Department, Patient, Slot, SlotHold
from app.models.base import utcnow
from app.services.booking import seats
from app.services.booking.calendar import cancel_deadline, format_local, release_at, released_until
from app.services.booking.errors import (
    AlreadyHolding,
    BookingSuspended,
    DailyLimit,
    PastDeadline,
    ResidentDailyLimit,
    ResidentTooManyActive,
    SlotInPast,
    SlotNotReleased,
    SlotTaken,
    TooManyActive,
)
from app.services.booking.patients import get_patient, lock_resident, own_patient
from app.services.booking.seats import one_transaction

# A fulfilled or missed visit used its seat; only a cancellation gives a seat back.
SEAT_HOLDING = ("booked", "fulfilled", "noshow")
MAX_SEARCH_DAYS = 31


def list_departments() -> list[Department]:
    return list(db.session.scalars(
        select(Department).options(joinedload(Department.hospital)).order_by(Department.hospital_id, Department.id)
    ))


def search_free_slots(*, department: int | str, date_from: date, date_to: date | None = None,
                      doctor_id: int | None = None, session: str | None = None, limit: int | None = None,
                      now: datetime | None = None) -> list[Slot]:
    """Released, future slots with a free seat, earliest first; `department` is an id or a name.

    A seat held by a hold past its time counts as free: the hold no longer blocks, whether or not it was ended.
    """
    now = now or utcnow()
    date_to = date_to or date_from
    if date_to < date_from or (date_to - date_from).days >= MAX_SEARCH_DAYS:
        raise ValidationFailed(f"the date range must run forward and span at most {MAX_SEARCH_DAYS} days",
                               code="bad_date_range")
    expired_holds = seats.expired_holds_of_slot(now)
    query = (
        select(Slot)
        .options(joinedload(Slot.doctor), joinedload(Slot.department).joinedload(Department.hospital),
                 with_expression(Slot.expired_holds, expired_holds))
        .where(Slot.department_id.in_(_department_ids(department)),
               Slot.local_date >= date_from, Slot.local_date <= min(date_to, released_until(now)),
               Slot.start_at > now, Slot.booked_count + Slot.held_count - expired_holds < Slot.capacity)
        .order_by(Slot.start_at, Slot.id)
    )
    if doctor_id is not None:
        query = query.where(Slot.doctor_id == doctor_id)
    if session is not None:
        query = query.where(Slot.session == session)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def book_slot(*, resident_id: int, slot_id: int, patient_id: int | None = None,
              now: datetime | None = None) -> Appointment:
    """Take a seat for a patient of the resident (their own record when patient_id is None)."""
    now = now or utcnow()
    return with_expired_holds_ended(slot_id, now, lambda: _book(resident_id, slot_id, patient_id, now))


def with_expired_holds_ended(slot_id: int, now: datetime, attempt):
    """attempt(); refused for a full slot, once more if holds past their time were what filled it.

    Lazy expiry: a hold past expires_at never keeps a seat from anybody, even before the periodic job ends it.
    """
    try:
        return attempt()
    except SlotTaken as refusal:
        if not getattr(refusal, "held_seen", 1) or not seats.expire_due_holds(now=now,
                                                                             among=SlotHold.slot_id == slot_id):
            raise
    return attempt()


def _book(resident_id: int, slot_id: int, patient_id: int | None, now: datetime) -> Appointment:
    with one_transaction():
        patient = (own_patient(resident_id=resident_id) if patient_id is None
                   else get_patient(resident_id=resident_id, patient_id=patient_id))
        slot = _bookable_slot(slot_id, now)
        # One booking at a time per patient, so the "at most 3 active" count cannot be raced past.
        patient = lock_patient(patient_id=patient.id)
        # And one at a time per resident, so bookings for two family members cannot both pass its caps.
        lock_resident(resident_id=resident_id)
        held = _held(patient, slot, now)
        _check_patient_may_book(patient, slot, now, held=held)
        _check_resident_may_book(resident_id, slot, now, held=held)
        _take_seat(slot)
        appointment = _seat_appointment(slot, patient_id=patient.id, resident_id=resident_id, now=now)
    return appointment


def cancel_appointment(*, resident_id: int, appointment_id: int, now: datetime | None = None) -> Appointment:
    """Cancel before the deadline and give the seat back (to the first in line, if any); twice changes nothing."""
    now = now or utcnow()
    offer = None
    with one_transaction():
        appointment = lock_appointment(appointment_id=appointment_id, resident_id=resident_id)
        if appointment.status == "cancelled":
            return appointment
        _require_booked(appointment)
        _require_before_deadline(appointment, now)
        offer = seats.offer_to_next(appointment.slot, now)
        _release_seat(appointment, now, offered=offer is not None)
    seats.announce(offer, now)
    return appointment


def reschedule_appointment(*, resident_id: int, appointment_id: int, new_slot_id: int,
                           now: datetime | None = None) -> Appointment:
    """Move a booking to another slot of the same department: both seats change together or neither."""
    now = now or utcnow()
    with one_transaction():
        current = _owned_appointment(appointment_id=appointment_id, resident_id=resident_id)
        new_slot = _bookable_slot(new_slot_id, now)
        if new_slot.department_id != current.department_id:
            raise ValidationFailed("a booking can only move within its department", code="different_department")
        if new_slot.id == current.slot_id:
            raise Conflict("the booking is already in this slot", code="same_slot")
        patient = lock_patient(patient_id=current.patient_id)
        lock_resident(resident_id=resident_id)
        current = lock_appointment(appointment_id=appointment_id, resident_id=resident_id)
        _require_booked(current)
        _require_before_deadline(current, now)
        held = _held(patient, new_slot, now)
        _check_patient_may_book(patient, new_slot, now, replacing=current, held=held)
        _check_resident_may_book(resident_id, new_slot, now, replacing=current, held=held)
        offer = seats.offer_to_next(current.slot, now)  # waitlist entries are locked before slots
        _lock_slots(current.slot_id, new_slot.id)
        _take_seat(new_slot)
        _release_seat(current, now, offered=offer is not None)
        moved = _seat_appointment(new_slot, patient_id=patient.id, resident_id=resident_id, now=now)
    seats.announce(offer, now)
    return moved


def list_appointments(*, resident_id: int, patient_id: int | None = None, active_only: bool = False,
                      now: datetime | None = None) -> list[Appointment]:
    """The resident's appointments (for all their patients or one), earliest visit first."""
    query = (
        select(Appointment).join(Appointment.slot)
        .options(joinedload(Appointment.slot).joinedload(Slot.doctor), joinedload(Appointment.patient),
                 joinedload(Appointment.department).joinedload(Department.hospital))
        .where(Appointment.booked_by_resident_id == resident_id)
        .order_by(Slot.start_at, Appointment.id)
    )
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    if active_only:
        query = query.where(Appointment.status == "booked", Slot.end_at > (now or utcnow()))
    return list(db.session.scalars(query))


def get_appointment(*, resident_id: int, appointment_id: int) -> Appointment:
    return _owned_appointment(appointment_id=appointment_id, resident_id=resident_id)


def lock_appointment(*, appointment_id: int, resident_id: int | None = None) -> Appointment:
    """The appointment row, locked and freshly read; resident_id None means staff (no ownership check)."""
    appointment = db.session.execute(
        select(Appointment).where(Appointment.id == appointment_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if appointment is None or (resident_id is not None and appointment.booked_by_resident_id != resident_id):
        raise NotFound("no such appointment")
    return appointment


def _owned_appointment(*, appointment_id: int, resident_id: int) -> Appointment:
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.booked_by_resident_id != resident_id:
        raise NotFound("no such appointment")
    return appointment


def _department_ids(department: int | str) -> list[int]:
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if isinstance(department, int) or str(department).isdecimal():
        ids = [int(department)] if db.session.get(Department, int(department)) else []
    else:
        # The bot names a department ("内科"); several hospitals may have one of that name.
        ids = list(db.session.scalars(select(Department.id).where(Department.name == str(department).strip())))
    if not ids:
        raise NotFound("no such department")
    return ids


def _bookable_slot(slot_id: int, now: datetime) -> Slot:
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        raise NotFound("no such slot")
    if slot.start_at <= now:
        raise SlotInPast("this slot has already begun")
    opens = release_at(slot.local_date)
    if now < opens:
        raise SlotNotReleased(f"this slot opens for booking at {format_local(opens)}",
                              details={"released_at": opens.isoformat()})
    return slot


def lock_patient(*, patient_id: int) -> Patient:
    """The patient row, locked and freshly read: the first lock any booking change takes."""
    return db.session.execute(
        select(Patient).where(Patient.id == patient_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def _held(patient: Patient, slot: Slot, now: datetime, excluding_hold: int | None = None) -> seats.HeldSeats:
    """The seats the patient's resident holds (but `excluding_hold`), counted against the caps like bookings."""
    return seats.held_seats(resident_id=patient.resident_id, patient_id=patient.id,
                            department_id=slot.department_id, local_date=slot.local_date, now=now,
                            excluding=excluding_hold)


def _check_patient_may_book(patient: Patient, slot: Slot, now: datetime,
                            replacing: Appointment | None = None, *, held: seats.HeldSeats) -> None:
    """The per-patient rules, live holds (`held`) counted like bookings; a patient holding a seat of that day
    confirms or releases it rather than booking a second one."""
    if patient.suspended_until is not None and patient.suspended_until > now:
        raise BookingSuspended(f"booking is suspended until {format_local(patient.suspended_until, '%Y-%m-%d')} "
                               "after repeated missed visits")
    others = [Appointment.patient_id == patient.id, Appointment.status == "booked"]
    if replacing is not None:
        others.append(Appointment.id != replacing.id)
    same_day = db.session.scalar(select(exists().where(
        *others, Appointment.department_id == slot.department_id, Appointment.local_date == slot.local_date)))
    if same_day:
        raise DailyLimit("this patient already has a booking in this department on that day")
    if held.patient_day:
        raise already_holding(seats.live_hold_of(patient_id=patient.id, department_id=slot.department_id,
                                                 local_date=slot.local_date, now=now))
    if replacing is None:
        active = db.session.scalar(
            select(func.count()).select_from(Appointment).join(Appointment.slot).where(*others, Slot.end_at > now))
        if active + held.patient_total >= _max_active():
            raise TooManyActive(f"a patient can hold at most {_max_active()} bookings at a time")


def already_holding(hold) -> AlreadyHolding:
    return AlreadyHolding("this patient holds a seat in this department on that day: confirm or release it",
                          details={"hold_id": hold.id, "slot_id": hold.slot_id,
                                   "expires_at": hold.expires_at.isoformat()})


def _check_resident_may_book(resident_id: int, slot: Slot, now: datetime,
                             replacing: Appointment | None = None, *, held: seats.HeldSeats) -> None:
    """The per-resident caps: the per-patient ones alone multiply with every family member registered.

    Besides the total, a cap per department and day: the total alone would still let one account hold a
    small clinic's whole day (6 seats), while 2 covers the usual family case of taking one or two
    relatives to the same clinic on the same day (BOOKING_MAX_PER_RESIDENT_DEPARTMENT_DAY).
    """
    others = [Appointment.booked_by_resident_id == resident_id, Appointment.status == "booked"]
    if replacing is not None:
        others.append(Appointment.id != replacing.id)
    day_cap = setting("BOOKING_MAX_PER_RESIDENT_DEPARTMENT_DAY")
    same_day = db.session.scalar(select(func.count()).select_from(Appointment).where(
        *others, Appointment.department_id == slot.department_id, Appointment.local_date == slot.local_date))
    if same_day + held.resident_day >= day_cap:
        raise ResidentDailyLimit(f"同一科室同一天，每位居民（含家人）最多预约{day_cap}个号")
    if replacing is None:  # a move keeps the total
        cap = setting("BOOKING_MAX_ACTIVE_PER_RESIDENT")
        active = db.session.scalar(
            select(func.count()).select_from(Appointment).join(Appointment.slot).where(*others, Slot.end_at > now))
        if active + held.resident_total >= cap:
            raise ResidentTooManyActive(f"每位居民（含家人）最多同时持有{cap}个待就诊的预约，请先就诊或取消一个")


def _take_seat(slot: Slot) -> None:
    """The guarded increment: only one of the racing transactions can take the last seat, held ones counted."""
    seats.take_seat(slot, as_hold=False)


def _release_seat(appointment: Appointment, now: datetime, *, offered: bool) -> None:
    """Cancel and give the seat back: free, or still held when it was just offered to the first in line."""
    appointment.status = "cancelled"
    appointment.cancelled_at = now
    db.session.flush()
    seats.give_back(appointment.slot, was_held=False, offered=offered)


def _lock_slots(*slot_ids: int) -> None:
    db.session.execute(select(Slot.id).where(Slot.id.in_(slot_ids)).order_by(Slot.id).with_for_update())


def _seat_appointment(slot: Slot, *, patient_id: int, resident_id: int, now: datetime) -> Appointment:
    """Insert the appointment on the lowest free seat; runs after _take_seat, under the slot's row lock."""
    held = set(db.session.scalars(
        select(Appointment.seat_no).where(Appointment.slot_id == slot.id, Appointment.status.in_(SEAT_HOLDING))))
    seat_no = next((n for n in range(1, slot.capacity + 1) if n not in held), None)
    if seat_no is None:
        raise SlotTaken("no seat is left in this slot")
    appointment = Appointment(
        slot_id=slot.id, seat_no=seat_no, patient_id=patient_id, booked_by_resident_id=resident_id,
        department_id=slot.department_id, local_date=slot.local_date, status="booked", created_at=now,
    )
    db.session.add(appointment)
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise _explain(exc) from None
    return appointment


def _explain(exc: IntegrityError) -> Exception:
    """Which guard refused the insert; PostgreSQL names the index, SQLite the columns."""
    reason = str(exc.orig)
    if "uq_appointments_active_patient_day" in reason or "appointments.patient_id" in reason:
        return DailyLimit("this patient already has a booking in this department on that day")
    if "uq_appointments_active_seat" in reason or "appointments.seat_no" in reason:
        return SlotTaken("no seat is left in this slot")
    return exc


def _require_booked(appointment: Appointment) -> None:
    if appointment.status != "booked":
        raise InvalidTransition(f"the appointment is {appointment.status}")


def _require_before_deadline(appointment: Appointment, now: datetime) -> None:
    deadline = cancel_deadline(appointment.local_date)
    if now >= deadline:
        raise PastDeadline(f"changes were possible until {format_local(deadline)}",
                           details={"deadline": deadline.isoformat()})


def _max_active() -> int:
    return setting("BOOKING_MAX_ACTIVE")

