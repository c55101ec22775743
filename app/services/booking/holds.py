"""Held seats: choosing a slot sets one seat aside for BOOKING_HOLD_SECONDS while the resident confirms.

A hold takes its seat with the same guarded UPDATE as a booking (slots.held_count, seats.py), so holds count against
capacity and two residents can never hold or book the same last seat. Confirming a live hold turns it into an
appointment in one transaction, under every booking rule (the hold itself is not counted twice); a hold past its
time never blocks anybody: the periodic job `booking.release_expired_holds` ends it, and so does anyone who finds
its slot full before that. Its seat then goes to the first patient waiting for that day (waitlist.py), else it is
free. Offers from the waitlist are holds of kind 'offer', confirmed the same way.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from app.core.config import setting
from app.core.errors import NotFound
from app.core.extensions import db
from app.models import Appointment, SlotHold
from app.models.base import utcnow
from app.services.booking import seats
from app.services.booking.appointments import (
    _bookable_slot,
    _check_patient_may_book,
    _check_resident_may_book,
    _held,
    _seat_appointment,
    already_holding,
    lock_patient,
    with_expired_holds_ended,
)
from app.services.booking.errors import (
    AlreadyHolding,
    HoldConfirmed,
    HoldExpired,
    HoldReleased,
    OfferLapsed,
    SlotInPast,
)
from app.services.booking.patients import get_patient, lock_resident, own_patient
from app.services.booking.seats import one_transaction

log = logging.getLogger(__name__)


def hold_slot(*, resident_id: int, slot_id: int, patient_id: int | None = None,
              now: datetime | None = None) -> SlotHold:
    """Hold one seat of a slot for a patient of the resident (their own record when patient_id is None).

    Holding the same slot again for the same patient answers the live hold (a retried request is harmless);
    another slot of that department and day is refused (`already_holding`): confirm or release the first.
    """
    now = now or utcnow()
    patient = (own_patient(resident_id=resident_id) if patient_id is None
               else get_patient(resident_id=resident_id, patient_id=patient_id))

    def attempt():
        return with_expired_holds_ended(slot_id, now, lambda: _hold(resident_id, slot_id, patient.id, now))

    try:
        return attempt()
    except _InTheWay:
        # The patient's own hold of that day, past its time but not ended yet, holds the unique index: end it.
        if not seats.expire_due_holds(now=now, among=SlotHold.patient_id == patient.id):
            raise _already_held() from None
    try:
        return attempt()
    except _InTheWay:
        raise _already_held() from None


def _already_held() -> AlreadyHolding:
    return AlreadyHolding("this patient holds a seat in this department on that day")


class _InTheWay(Exception):
    """The insert of a hold met uq_slot_holds_held_patient_day."""


def _hold(resident_id: int, slot_id: int, patient_id: int, now: datetime) -> SlotHold:
    with one_transaction():
        slot = _bookable_slot(slot_id, now)
        patient = lock_patient(patient_id=patient_id)
        lock_resident(resident_id=resident_id)
        current = seats.live_hold_of(patient_id=patient.id, department_id=slot.department_id,
                                     local_date=slot.local_date, now=now)
        if current is not None:
            if current.slot_id == slot.id:
                return current
            raise already_holding(current)
        held = _held(patient, slot, now)
        _check_patient_may_book(patient, slot, now, held=held)
        _check_resident_may_book(resident_id, slot, now, held=held)
        hold = SlotHold(slot_id=slot.id, resident_id=resident_id, patient_id=patient.id,
                        department_id=slot.department_id, local_date=slot.local_date, kind="hold", status="held",
                        created_at=now,
                        expires_at=min(now + timedelta(seconds=setting("BOOKING_HOLD_SECONDS")), slot.start_at))
        db.session.add(hold)
        try:
            db.session.flush()  # the hold's row before the slot's: the slot row is the last lock (seats.py)
        except IntegrityError:
            raise _InTheWay from None
        seats.take_seat(slot, as_hold=True)
    return hold


def confirm_hold(*, resident_id: int, hold_id: int, now: datetime | None = None) -> Appointment:
    """Turn a live hold into the appointment, atomically; confirming it again answers that appointment.

    Refused, nothing booked: a hold past its time (`hold_expired`; an offer: `offer_lapsed`), a released one
    (`hold_released`), and whatever the booking rules refuse (the hold then stays until it runs out or is released).
    """
    now = now or utcnow()
    hold = get_hold(resident_id=resident_id, hold_id=hold_id)
    settled = _settled(hold, now)
    if settled is not None:
        return settled
    with one_transaction():
        patient = lock_patient(patient_id=hold.patient_id)
        lock_resident(resident_id=resident_id)
        if patient.removed_at is not None:
            raise NotFound("no such patient")
        slot = hold.slot
        if slot.start_at <= now:
            raise SlotInPast("this slot has already begun")
        held = _held(patient, slot, now, excluding_hold=hold.id)
        _check_patient_may_book(patient, slot, now, held=held)
        _check_resident_may_book(resident_id, slot, now, held=held)
        confirmed = seats.end_hold(hold.id, "confirmed", now, expired=False)
        if confirmed is not None:
            if confirmed.kind == "offer":
                seats.close_entry(confirmed.waitlist_entry_id, "booked", now)
            seats.held_to_booked(slot)
            appointment = _seat_appointment(slot, patient_id=patient.id, resident_id=resident_id, now=now)
            confirmed.appointment_id = appointment.id
            return appointment
    # Ended by another request in between (confirmed twice at once, released, or expired at this moment).
    db.session.refresh(hold)
    settled = _settled(hold, now)
    if settled is None:
        raise RuntimeError(f"hold {hold.id} is still held after its confirmation lost the compare-and-set")
    return settled


def release_hold(*, resident_id: int, hold_id: int, now: datetime | None = None) -> SlotHold:
    """Give a held seat back (to the first in line, if any); releasing an ended hold changes nothing.

    Releasing an offer declines it and leaves the waitlist. A confirmed hold is an appointment: 409 `hold_confirmed`
    (cancel the appointment instead).
    """
    now = now or utcnow()
    hold = get_hold(resident_id=resident_id, hold_id=hold_id)
    if hold.status == "held":
        offer = None
        with one_transaction():
            released = seats.end_hold(hold.id, "released", now)
            if released is not None:
                offer = seats.pass_on(released, now)
        seats.announce(offer, now)
        db.session.refresh(hold)  # released here, or ended by another request in between
    if hold.status == "confirmed":
        raise HoldConfirmed("this hold became an appointment: cancel the appointment instead",
                            details={"appointment_id": hold.appointment_id})
    return hold


def get_hold(*, resident_id: int, hold_id: int) -> SlotHold:
    """A hold of this resident; another resident's is as unknown as a missing one."""
    hold = db.session.get(SlotHold, hold_id)
    if hold is None or hold.resident_id != resident_id:
        raise NotFound("no such hold")
    return hold


def release_expired_holds(*, now: datetime | None = None) -> int:
    """The periodic job's work: end every hold past its time (its seat to the next in line, else free), offer
    seats that are free while patients wait, and send offer notices not sent yet; how many holds were ended."""
    now = now or utcnow()
    ended = seats.expire_due_holds(now=now, keep_going=True)
    for department_id, local_date in seats.days_with_waiting(now):
        try:
            seats.offer_free_seats(department_id, local_date, now)
        except Exception:  # one broken day must not hold back every other line
            db.session.rollback()
            log.exception("offering free seats failed", extra={"department_id": department_id, "day": str(local_date)})
    seats.announce_pending(now)
    return ended


def _settled(hold: SlotHold, now: datetime) -> Appointment | None:
    """None for a live hold; the appointment of a confirmed one; a refusal for one that ended (or just ran out)."""
    if hold.status == "held":
        if hold.expires_at > now:
            return None
        seats.expire_due_holds(now=now, among=SlotHold.id == hold.id)  # lazily: its seat goes on right now
        db.session.refresh(hold)
    if hold.status == "confirmed":
        return db.session.get(Appointment, hold.appointment_id)
    if hold.status == "released":
        raise HoldReleased("this hold was released")
    if hold.kind == "offer":
        raise OfferLapsed("the offer lapsed: the seat went to the next in line",
                          details={"expired_at": hold.expires_at.isoformat()})
    raise HoldExpired("the hold ran out before it was confirmed; choose a slot again",
                      details={"expired_at": hold.expires_at.isoformat()})
