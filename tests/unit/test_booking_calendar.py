"""The booking calendar's edges in Asia/Shanghai, and how constraint violations are named."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import IntegrityError

from app.api.schemas.booking import AppointmentOut, PatientOut
from app.services.booking import appointments as booking
from app.services.booking import reminders as booking_reminders
from app.services.booking.calendar import (
    SHANGHAI,
    cancel_deadline,
    evening_reminder_at,
    release_at,
    released_until,
)

VISIT = date(2031, 3, 12)


def shanghai(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def test_slots_are_released_seven_days_ahead_at_eight(ctx):
    assert release_at(VISIT) == shanghai(2031, 3, 5, 8, 0)
    assert released_until(shanghai(2031, 3, 5, 7, 59)) == date(2031, 3, 11)
    assert released_until(shanghai(2031, 3, 5, 8, 0)) == VISIT


def test_the_release_day_follows_shanghai_not_utc(ctx):
    # 23:30 UTC on the 4th is 07:30 on the 5th in Shanghai: before the release time of that day.
    late_utc = datetime(2031, 3, 4, 23, 30, tzinfo=timezone.utc)
    assert released_until(late_utc) == date(2031, 3, 11)


def test_cancel_deadline_and_evening_reminder_are_the_day_before(ctx):
    assert cancel_deadline(VISIT) == shanghai(2031, 3, 11, 15, 0)
    assert evening_reminder_at(VISIT) == shanghai(2031, 3, 11, 18, 0)


def test_the_times_are_configurable(ctx):
    ctx.config.update(BOOKING_CANCEL_DEADLINE="12:00", BOOKING_REMINDER_EVENING="19:30")
    try:
        assert cancel_deadline(VISIT) == shanghai(2031, 3, 11, 12, 0)
        assert evening_reminder_at(VISIT) == shanghai(2031, 3, 11, 19, 30)
    finally:
        ctx.config.pop("BOOKING_CANCEL_DEADLINE")
        ctx.config.pop("BOOKING_REMINDER_EVENING")


def _row(created_at, evening=None, soon=None):
    return SimpleNamespace(local_date=VISIT, start_at=shanghai(2031, 3, 12, 9, 0), created_at=created_at,
                           reminded_evening_at=evening, reminded_soon_at=soon)


@pytest.mark.parametrize(("now", "row", "kind"), [
    (shanghai(2031, 3, 11, 17, 59), _row(shanghai(2031, 3, 1)), None),
    (shanghai(2031, 3, 11, 18, 0), _row(shanghai(2031, 3, 1)), "evening"),
    (shanghai(2031, 3, 11, 18, 0), _row(shanghai(2031, 3, 11, 18, 5)), None),  # booked after 18:00
    (shanghai(2031, 3, 11, 21, 0), _row(shanghai(2031, 3, 1), evening=shanghai(2031, 3, 11, 18)), None),
    (shanghai(2031, 3, 12, 7, 0), _row(shanghai(2031, 3, 1)), "soon"),
    (shanghai(2031, 3, 12, 7, 0), _row(shanghai(2031, 3, 1), soon=shanghai(2031, 3, 12, 7)), None),
])
def test_which_reminder_is_due(ctx, now, row, kind):
    assert booking_reminders._due_kind(row, now) == kind


@pytest.mark.parametrize(("message", "code"), [
    ('duplicate key value violates unique constraint "uq_appointments_active_seat"', "slot_taken"),
    ('duplicate key value violates unique constraint "uq_appointments_active_patient_day"', "daily_limit"),
    ("UNIQUE constraint failed: appointments.slot_id, appointments.seat_no", "slot_taken"),
    ("UNIQUE constraint failed: appointments.patient_id, appointments.department_id, appointments.local_date",
     "daily_limit"),
])
def test_a_guard_violation_becomes_the_domain_error(message, code):
    assert booking._explain(IntegrityError("INSERT", {}, Exception(message))).code == code


def test_an_unrelated_integrity_error_is_not_disguised():
    exc = IntegrityError("INSERT", {}, Exception("foreign key violation"))
    assert booking._explain(exc) is exc


def test_id_numbers_are_only_ever_serialised_masked():
    patient = SimpleNamespace(id=1, name="王", relation="self", id_number_last4="123X", phone=None,
                              suspended_until=None, id_number_encrypted="secret")
    dumped = PatientOut().dump(patient)
    assert dumped["id_number_masked"] == "**************123X"
    assert "secret" not in str(dumped)


def test_times_are_serialised_in_shanghai():
    start = datetime(2031, 3, 12, 1, 0, tzinfo=timezone.utc)
    slot = SimpleNamespace(start_at=start, end_at=start + timedelta(minutes=30),
                           doctor=SimpleNamespace(name="李", title="专家"))
    appointment = SimpleNamespace(id=1, slot_id=1, seat_no=1, status="booked", slot=slot,
                                  department=SimpleNamespace(name="内科", hospital=SimpleNamespace(name="社区医院")),
                                  patient=SimpleNamespace(id=1, name="王", id_number_last4="0000"),
                                  created_at=start, cancelled_at=None)
    assert AppointmentOut().dump(appointment)["start"] == "2031-03-12T09:00:00+08:00"
