"""Racing requests on real PostgreSQL connections: a seat is never handed out twice, nor lost.

Each thread runs in its own app context, so it has its own session and its own connection; a
barrier lets them all start at once.
"""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Appointment
from app.services.booking import appointments as booking
from tests.factories import PatientFactory, ResidentFactory
from tests.helpers.booking import NOW, assert_slot_consistent, clinic, race

pytestmark = pytest.mark.timeout(120)




def _residents(n: int):
    residents = [ResidentFactory() for _ in range(n)]
    for resident in residents:
        PatientFactory(resident=resident)
    return [r.id for r in residents]


def _book(resident_id, slot_id):
    return lambda: booking.book_slot(resident_id=resident_id, slot_id=slot_id, now=NOW).id


def test_fifty_residents_racing_for_the_last_five_seats_get_five(app, committed):
    slot, = clinic(capacity=8)
    early = _residents(3)
    racers = _residents(50)
    slot_id = slot.id
    db.session.commit()
    for resident_id in early:
        booking.book_slot(resident_id=resident_id, slot_id=slot_id, now=NOW)

    outcomes = race(app, [_book(r, slot_id) for r in racers])

    won = [o for o in outcomes if isinstance(o, int)]
    assert len(won) == 5
    assert Counter(o for o in outcomes if not isinstance(o, int)) == {"slot_taken": 45}
    holders = db.session.scalars(select(Appointment.booked_by_resident_id).where(
        Appointment.slot_id == slot_id, Appointment.status == "booked")).all()
    assert len(holders) == 8 and len(set(holders)) == 8
    assert_slot_consistent(slot_id)


def test_one_patient_booking_twice_at_once_gets_one_appointment(app, committed):
    same_slot, other_slot = clinic(slots=2, capacity=10)
    resident_id, = _residents(1)
    ids = (same_slot.id, other_slot.id)
    db.session.commit()

    # Ten tries at the same slot and ten at another slot of the same department and day.
    outcomes = race(app, [_book(resident_id, ids[i % 2]) for i in range(20)])

    assert len([o for o in outcomes if isinstance(o, int)]) == 1
    assert set(o for o in outcomes if not isinstance(o, int)) == {"daily_limit"}
    assert db.session.scalar(select(db.func.count()).select_from(Appointment).where(
        Appointment.booked_by_resident_id == resident_id, Appointment.status == "booked")) == 1
    for slot_id in ids:
        assert_slot_consistent(slot_id)


def test_reschedules_racing_bookings_never_lose_or_duplicate_a_seat(app, committed):
    source, target = clinic(slots=2, capacity=4)
    movers = _residents(4)
    bookers = _residents(8)
    source_id, target_id = source.id, target.id
    db.session.commit()
    originals = {r: booking.book_slot(resident_id=r, slot_id=source_id, now=NOW).id for r in movers}

    def move(resident_id):
        return lambda: booking.reschedule_appointment(resident_id=resident_id, appointment_id=originals[resident_id],
                                                      new_slot_id=target_id, now=NOW).id

    # Movers leave the full source slot for the target while bookers pile into both.
    calls = [move(r) for r in movers] + [_book(r, (source_id, target_id)[i % 2]) for i, r in enumerate(bookers)]
    outcomes = race(app, calls)

    assert set(o for o in outcomes if not isinstance(o, int)) <= {"slot_taken"}
    for slot_id in (source_id, target_id):
        assert_slot_consistent(slot_id)
    booked = db.session.execute(select(Appointment.booked_by_resident_id, Appointment.slot_id).where(
        Appointment.status == "booked")).all()
    per_resident = Counter(r for r, _ in booked)
    # Every mover still holds exactly one seat: the new one, or the old one if the move was refused.
    assert all(per_resident[r] == 1 for r in movers)
    for resident_id, outcome in zip(movers, outcomes[:4]):
        held_slot = next(s for r, s in booked if r == resident_id)
        assert held_slot == (target_id if isinstance(outcome, int) else source_id)
    successful_bookings = [o for o in outcomes[4:] if isinstance(o, int)]
    assert len(booked) == 4 + len(successful_bookings) <= 8
