"""The waitlist of a department's day: when no seat is left a patient joins the line, and a seat given back
(a cancellation, a move, a hold that ran out or was released) is offered to the first one waiting.

An offer is a hold of kind 'offer' for BOOKING_OFFER_SECONDS, made in the transaction that frees the seat
(seats.offer_to_next) and announced on the resident's channel through the outbox. Accepting it books atomically
(holds.confirm_hold); once it lapses unanswered the seat goes to the next in line, lazily (whoever touches it)
and by the periodic job `booking.release_expired_holds`.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.core.errors import NotFound
from app.core.extensions import db
from app.models import Appointment, Department, Slot, SlotHold, WaitlistEntry
from app.models.base import utcnow
from app.services.booking import seats
from app.services.booking.appointments import _department_ids, already_holding, lock_patient
from app.services.booking.calendar import format_local, local_day, release_at
from app.services.booking.errors import (
    AlreadyWaiting,
    AmbiguousDepartment,
    BookingSuspended,
    DailyLimit,
    NoOffer,
    NoSlots,
    NotInLine,
    SeatsAvailable,
    SlotNotReleased,
)
from app.services.booking.holds import confirm_hold, release_hold
from app.services.booking.patients import get_patient, lock_resident, own_patient
from app.services.booking.seats import one_transaction


def department_id_of(department: int | str) -> int:
    """One department from an id or a name (the bot names "内科"); a name several hospitals share is refused."""
    ids = _department_ids(department)
    if len(ids) > 1:
        raise AmbiguousDepartment("several hospitals have a department of this name: give its id",
                                  details={"department_ids": ids})
    return ids[0]


def join_waitlist(*, resident_id: int, department_id: int, day: date, patient_id: int | None = None,
                  now: datetime | None = None) -> WaitlistEntry:
    """Put a patient of the resident in line for a department's day on which no seat is left."""
    now = now or utcnow()
    patient = (own_patient(resident_id=resident_id) if patient_id is None
               else get_patient(resident_id=resident_id, patient_id=patient_id))
    if db.session.get(Department, department_id) is None:
        raise NotFound("no such department")
    opens = release_at(day)
    if now < opens:
        raise SlotNotReleased(f"this day opens for booking at {format_local(opens)}: book then",
                              details={"released_at": opens.isoformat()})
    upcoming = select(Slot.id).where(Slot.department_id == department_id, Slot.local_date == day, Slot.start_at > now)
    if not db.session.scalar(select(upcoming.exists())):
        raise NoSlots("this department has no upcoming slots on that day")
    seats.expire_due_holds(now=now, among=SlotHold.slot_id.in_(upcoming))
    free = seats.free_slot_of_day(department_id, day, now)
    if free is not None:
        raise SeatsAvailable("seats are free on that day: book one", details={"slot_id": free.id})
    with one_transaction():
        patient = lock_patient(patient_id=patient.id)
        lock_resident(resident_id=resident_id)
        if patient.suspended_until is not None and patient.suspended_until > now:
            raise BookingSuspended(f"booking is suspended until {format_local(patient.suspended_until, '%Y-%m-%d')} "
                                   "after repeated missed visits")
        if db.session.scalar(select(exists().where(
                Appointment.patient_id == patient.id, Appointment.department_id == department_id,
                Appointment.local_date == day, Appointment.status == "booked"))):
            raise DailyLimit("this patient already has a booking in this department on that day")
        held = seats.live_hold_of(patient_id=patient.id, department_id=department_id, local_date=day, now=now)
        if held is not None:
            raise already_holding(held)
        _refuse_second_place(patient.id, department_id, day)
        entry = WaitlistEntry(department_id=department_id, local_date=day, resident_id=resident_id,
                              patient_id=patient.id, status="waiting", created_at=now)
        db.session.add(entry)
        try:
            db.session.flush()
        except IntegrityError:  # joined by a concurrent request a moment ago
            raise AlreadyWaiting("this patient is already on the waitlist of that day") from None
    # A seat freed between the check above and this commit belongs to the line, this patient included.
    seats.offer_free_seats(department_id, day, now)
    db.session.refresh(entry)
    return _describe(entry)


def list_waitlist(*, resident_id: int, now: datetime | None = None) -> list[WaitlistEntry]:
    """The resident's entries for today and later, by day then place in line, each with its live offer and, while
    waiting, its position (1 = next to be offered a seat)."""
    now = now or utcnow()
    # Lazily: the resident's offers past their time lapse now, before the list shows them as open.
    seats.expire_due_holds(now=now, among=SlotHold.waitlist_entry_id.in_(
        select(WaitlistEntry.id).where(WaitlistEntry.resident_id == resident_id)))
    entries = list(db.session.scalars(
        select(WaitlistEntry)
        .options(joinedload(WaitlistEntry.department).joinedload(Department.hospital),
                 joinedload(WaitlistEntry.patient))
        .where(WaitlistEntry.resident_id == resident_id, WaitlistEntry.local_date >= local_day(now))
        .order_by(WaitlistEntry.local_date, WaitlistEntry.id)))
    for entry in entries:
        _describe(entry)
    return entries


def get_entry(*, resident_id: int, entry_id: int) -> WaitlistEntry:
    """One of the resident's entries, with its live offer and position; another resident's is unknown."""
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or entry.resident_id != resident_id:
        raise NotFound("no such waitlist entry")
    return _describe(entry)


def accept_offer(*, resident_id: int, entry_id: int, now: datetime | None = None) -> Appointment:
    """Book the seat offered to this entry, atomically; accepting again answers the same appointment.

    Refused, nothing booked: an offer past its time (`offer_lapsed`, the seat has gone to the next in line), no offer
    yet (`no_offer`), the entry left (`not_in_line`), and whatever the booking rules refuse.
    """
    now = now or utcnow()
    entry = get_entry(resident_id=resident_id, entry_id=entry_id)
    if entry.status == "waiting":
        raise NoOffer("no seat has been offered yet", details={"position": entry.position})
    if entry.status == "left":
        raise NotInLine("this patient left the waitlist")
    offer = db.session.scalar(select(SlotHold).where(SlotHold.waitlist_entry_id == entry.id)
                              .order_by(SlotHold.id.desc()).limit(1))
    if offer is None:  # booked some other way while waiting
        raise NoOffer("this entry was never offered a seat")
    # A lapsed, released or confirmed offer gets its own answer there; a live one is booked.
    return confirm_hold(resident_id=resident_id, hold_id=offer.id, now=now)


def leave_waitlist(*, resident_id: int, entry_id: int, now: datetime | None = None) -> WaitlistEntry:
    """Leave the line; a live offer is declined and its seat goes to the next one. Leaving twice changes nothing."""
    now = now or utcnow()
    entry = get_entry(resident_id=resident_id, entry_id=entry_id)
    if entry.status == "waiting":
        with one_transaction():
            left = db.session.execute(
                update(WaitlistEntry).where(WaitlistEntry.id == entry.id, WaitlistEntry.status == "waiting")
                .values(status="left", ended_at=now).execution_options(synchronize_session=False))
        if left.rowcount != 1:  # offered a seat at this very moment: decline that offer below
            db.session.refresh(entry)
            _describe(entry)
    if entry.status == "offered" and entry.offer is not None:
        release_hold(resident_id=resident_id, hold_id=entry.offer.id, now=now)
    db.session.refresh(entry)
    return _describe(entry)


def _refuse_second_place(patient_id: int, department_id: int, day: date) -> None:
    in_line = db.session.scalar(select(WaitlistEntry.id).where(
        WaitlistEntry.patient_id == patient_id, WaitlistEntry.department_id == department_id,
        WaitlistEntry.local_date == day, WaitlistEntry.status.in_(("waiting", "offered"))))
    if in_line is not None:
        raise AlreadyWaiting("this patient is already on the waitlist of that day", details={"entry_id": in_line})


def _describe(entry: WaitlistEntry) -> WaitlistEntry:
    """Attach what the answers show: the live offer (or None) and the place in line while waiting."""
    entry.offer = db.session.scalar(select(SlotHold).where(SlotHold.waitlist_entry_id == entry.id,
                                                           SlotHold.status == "held"))
    entry.position = None
    if entry.status == "waiting":
        entry.position = db.session.scalar(select(func.count()).select_from(WaitlistEntry).where(
            WaitlistEntry.department_id == entry.department_id, WaitlistEntry.local_date == entry.local_date,
            WaitlistEntry.status == "waiting", WaitlistEntry.id <= entry.id))
    return entry
