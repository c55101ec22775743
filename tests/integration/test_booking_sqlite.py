"""The same promise on SQLite (the laptop default): racing bookings never share a seat."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Appointment
from tests.conftest import sqlite_app_for
from tests.helpers.booking import assert_slot_consistent, clinic, race
from tests.integration.test_booking_concurrency import _book, _residents

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    return sqlite_app_for(tmp_path_factory, "booking")


def test_racing_residents_on_sqlite_get_exactly_the_free_seats(sqlite_app, sqlite_committed):
    slot, = clinic(capacity=3)
    racers = _residents(20)
    slot_id = slot.id
    db.session.commit()

    outcomes = race(sqlite_app, [_book(r, slot_id) for r in racers])

    assert len([o for o in outcomes if isinstance(o, int)]) == 3
    assert Counter(o for o in outcomes if not isinstance(o, int)) == {"slot_taken": 17}
    assert_slot_consistent(slot_id)


def test_one_patient_booking_twice_at_once_on_sqlite_gets_one(sqlite_app, sqlite_committed):
    first, second = clinic(slots=2, capacity=5)
    resident_id, = _residents(1)
    ids = (first.id, second.id)
    db.session.commit()

    outcomes = race(sqlite_app, [_book(resident_id, ids[i % 2]) for i in range(8)])

    assert len([o for o in outcomes if isinstance(o, int)]) == 1
    assert db.session.scalar(select(db.func.count()).select_from(Appointment).where(
        Appointment.status == "booked")) == 1
