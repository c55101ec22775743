"""Shared test data for the booking tests (no tests here): a fixed calendar and a small clinic.

The visit day is fixed and `NOW` is two days before it at 10:00 Asia/Shanghai, so every slot of
DAY is released (7 days ahead) and still cancellable (until 15:00 the day before).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time, timedelta

from sqlalchemy import func, select

from app.core.errors import DomainError
from app.core.extensions import db
from app.models import Appointment, Slot, SlotHold
from tests.factories import (
    ConversationFactory,
    DepartmentFactory,
    DoctorFactory,
    PatientFactory,
    ResidentFactory,
    SlotFactory,
    local_dt,
)

DAY = date(2031, 3, 12)
NOW = local_dt(DAY - timedelta(days=2), time(10, 0))


def clinic(*, slots: int = 1, capacity: int = 3, day: date = DAY, department=None):
    """A doctor with `slots` consecutive half-hour slots from 09:00 on `day`."""
    doctor = DoctorFactory(department=department or DepartmentFactory())
    return [SlotFactory(doctor=doctor, department=doctor.department, day=day,
                        at=time(9 + i // 2, 30 * (i % 2)), capacity=capacity) for i in range(slots)]


def resident_with_patient(*, conversation: bool = False, relation: str = "self"):
    resident = ResidentFactory()
    if conversation:
        ConversationFactory(resident=resident, channel="wechat")
    return resident, PatientFactory(resident=resident, relation=relation)


def seats_held(slot_id: int) -> list[int]:
    return list(db.session.scalars(select(Appointment.seat_no).where(
        Appointment.slot_id == slot_id, Appointment.status != "cancelled").order_by(Appointment.seat_no)))


def assert_slot_consistent(slot_id: int) -> None:
    """free = capacity - active, with every held seat distinct, counted from the database."""
    slot = db.session.execute(select(Slot).where(Slot.id == slot_id).execution_options(populate_existing=True)
                              ).scalar_one()
    seats = seats_held(slot_id)
    assert slot.booked_count == len(seats), (slot.booked_count, seats)
    assert slot.free == slot.capacity - len(seats)
    assert 0 <= slot.free <= slot.capacity
    assert len(set(seats)) == len(seats) and all(1 <= s <= slot.capacity for s in seats)


def assert_seats_add_up(slot_id: int) -> None:
    """booked_count = appointments not cancelled, held_count = holds 'held', together within capacity."""
    slot = db.session.execute(select(Slot).where(Slot.id == slot_id).execution_options(populate_existing=True)
                              ).scalar_one()
    seats = seats_held(slot_id)
    assert (slot.booked_count, slot.held_count) == (len(seats), _held(slot_id)), (slot.booked_count, slot.held_count)
    assert slot.booked_count + slot.held_count <= slot.capacity
    assert len(set(seats)) == len(seats) and all(1 <= s <= slot.capacity for s in seats)


def _held(slot_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(SlotHold).where(
        SlotHold.slot_id == slot_id, SlotHold.status == "held"))


def active_count(patient_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Appointment).where(
        Appointment.patient_id == patient_id, Appointment.status == "booked"))


def race(app, calls):
    """Run every call at the same moment, each in its own app context and session; results or error codes."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        with app.app_context():
            barrier.wait()
            try:
                return call()
            except DomainError as exc:
                return exc.code
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
