"""Property: whatever sequence of book, cancel and reschedule happens, free = capacity - active.

Counts come from the database after every step; refused steps must change nothing, accepted ones
exactly one seat (book +1, cancel -1, reschedule 0 in total).
"""
from __future__ import annotations

from datetime import time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.core.errors import DomainError
from app.core.extensions import db
from app.models import Appointment
from app.services.booking import appointments as booking
from tests.factories import DepartmentFactory, PatientFactory, ResidentFactory, SlotFactory
from tests.helpers.booking import DAY, NOW, assert_slot_consistent

PATIENTS = 4
# Two slots on DAY and one the day after, all small, in one department: the daily rule and full
# slots get exercised often.
SLOT_PLAN = [(DAY, time(9, 0), 2), (DAY, time(9, 30), 1), (DAY + timedelta(days=1), time(9, 0), 2)]

step = st.one_of(
    st.tuples(st.just("book"), st.integers(0, PATIENTS - 1), st.integers(0, len(SLOT_PLAN) - 1)),
    st.tuples(st.just("cancel"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("reschedule"), st.integers(0, 20), st.integers(0, len(SLOT_PLAN) - 1)),
)


def _active_total(slot_ids) -> int:
    return db.session.scalar(select(func.count()).select_from(Appointment).where(
        Appointment.slot_id.in_(slot_ids), Appointment.status == "booked"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_free_seats_always_equal_capacity_minus_active(session, steps):
    department = DepartmentFactory()
    doctor_slots = [SlotFactory(doctor__department=department, department=department, day=day, at=at, capacity=cap)
                    for day, at, cap in SLOT_PLAN]
    slot_ids = [s.id for s in doctor_slots]
    resident = ResidentFactory()
    patients = [PatientFactory(resident=resident, relation="self" if i == 0 else "child").id
                for i in range(PATIENTS)]
    made = []  # appointment ids in the order they were created

    for action, who, where in steps:
        before = _active_total(slot_ids)
        try:
            if action == "book":
                made.append(booking.book_slot(resident_id=resident.id, slot_id=slot_ids[where],
                                              patient_id=patients[who], now=NOW).id)
                expected = before + 1
            elif made:
                target = made[who % len(made)]
                if action == "cancel":
                    was_booked = db.session.get(Appointment, target).status == "booked"
                    booking.cancel_appointment(resident_id=resident.id, appointment_id=target, now=NOW)
                    expected = before - 1 if was_booked else before
                else:
                    made.append(booking.reschedule_appointment(resident_id=resident.id, appointment_id=target,
                                                               new_slot_id=slot_ids[where], now=NOW).id)
                    expected = before
            else:
                continue
        except DomainError:
            expected = before
        assert _active_total(slot_ids) == expected, (action, who, where)
        for slot_id in slot_ids:
            assert_slot_consistent(slot_id)
        for patient_id in patients:
            per_day = db.session.execute(select(Appointment.local_date, func.count()).where(
                Appointment.patient_id == patient_id, Appointment.status == "booked")
                .group_by(Appointment.local_date)).all()
            assert all(count == 1 for _, count in per_day)
