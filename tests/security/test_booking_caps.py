"""One resident cannot take a department's day: family members and bookings are capped per resident.

Generated, checksum-valid ID numbers pass registration, and the per-patient limits apply to each family
member separately, so without a per-resident cap one account could register people and book every seat.
The caps tested are the defaults of app/core/config.py.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from app.core.errors import DomainError
from app.core.extensions import db
from app.core.secrets_at_rest import keyed_hash
from app.models import Appointment, Patient, Resident
from app.seed import demo_id_number
from app.services.booking import appointments as booking
from app.services.booking import patients
from app.services.booking.calendar import SHANGHAI
from tests.factories import ConversationFactory, DepartmentFactory, PatientFactory, SlotFactory
from tests.helpers.booking import DAY, NOW, assert_slot_consistent, clinic, race, resident_with_patient
from tests.helpers.mobile import bearer, error_code, idem, sign_in

# BOOKING_MAX_FAMILY_MEMBERS, BOOKING_MAX_ACTIVE_PER_RESIDENT, BOOKING_MAX_PER_RESIDENT_DEPARTMENT_DAY
FAMILY_CAP, RESIDENT_CAP, DEPARTMENT_DAY_CAP = 5, 6, 2
SERVICE = {"Authorization": "Bearer test-bot-token"}


def _id(n: int) -> str:
    return demo_id_number("19900101", f"{n:03d}")  # the factories' people are born in 1960: no clash


def _refused(code: str, call, **kwargs) -> DomainError:
    db.session.commit()  # a refusal rolls back the service's transaction; keep the test's own rows out of it
    with pytest.raises(DomainError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value.message
    assert caught.value.status == 409
    return caught.value


def _family(resident, n: int) -> list[Patient]:
    return [PatientFactory(resident=resident, relation="child") for _ in range(n)]


def _booked(resident_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Appointment).where(
        Appointment.booked_by_resident_id == resident_id, Appointment.status == "booked"))


# --- family members ----------------------------------------------------------------------------------

def test_a_family_member_beyond_the_cap_is_refused_and_nothing_is_stored(session):
    resident, _ = resident_with_patient()  # the resident's own record does not count
    for n in range(FAMILY_CAP):
        patients.add_patient(resident_id=resident.id, name=f"家人{n}", id_number=_id(n), relation="child")

    error = _refused("too_many_family_members", patients.add_patient, resident_id=resident.id, name="多余的人",
                     id_number=_id(99), relation="other")

    assert str(FAMILY_CAP) in error.message
    assert db.session.scalar(select(func.count()).select_from(Patient).where(
        Patient.resident_id == resident.id)) == 1 + FAMILY_CAP
    assert db.session.scalar(select(Patient).where(Patient.id_number_hash == keyed_hash(_id(99)))) is None
    # Removing a member frees a place: removed records (kept for history) are not counted.
    first = patients.list_patients(resident_id=resident.id)[1]
    patients.remove_patient(resident_id=resident.id, patient_id=first.id)
    assert patients.add_patient(resident_id=resident.id, name="多余的人", id_number=_id(99), relation="other")


def test_turning_the_own_record_into_a_family_member_counts_against_the_cap(session):
    resident, own = resident_with_patient()
    _family(resident, FAMILY_CAP)
    # Otherwise: self -> parent, add a new self, repeat: one more family member each time.
    _refused("too_many_family_members", patients.update_patient, resident_id=resident.id, patient_id=own.id,
             relation="parent")
    assert db.session.get(Patient, own.id).relation == "self"


def test_the_family_cap_holds_on_the_app_and_on_the_deprecated_api(client, app):
    tokens = sign_in(client, app, "13800000026")
    for n in range(FAMILY_CAP):
        added = client.post("/api/v1/family", headers=idem(tokens),
                            json={"name": f"家人{n}", "id_number": _id(n), "relation": "child"})
        assert added.status_code == 201, added.get_data(as_text=True)
    db.session.commit()
    refused = client.post("/api/v1/family", headers=idem(tokens),
                          json={"name": "多余的人", "id_number": _id(98), "relation": "child"})
    assert error_code(refused, 409) == "too_many_family_members"
    refused = client.post(f"/api/booking/residents/{tokens['resident_id']}/patients", headers=SERVICE,
                          json={"name": "多余的人", "id_number": _id(97), "relation": "child"})
    assert error_code(refused, 409) == "too_many_family_members"
    assert len(client.get("/api/v1/family", headers=bearer(tokens)).get_json()["patients"]) == FAMILY_CAP


# --- bookings ----------------------------------------------------------------------------------------

def test_bookings_beyond_the_per_resident_cap_through_family_members_are_refused(session):
    resident, own = resident_with_patient()
    members = _family(resident, FAMILY_CAP)
    # One booking per person, each in a department of its own: no per-patient or department-day rule applies.
    first = None
    for patient in [own, *members][:RESIDENT_CAP]:
        slot, = clinic()
        made = booking.book_slot(resident_id=resident.id, patient_id=patient.id, slot_id=slot.id, now=NOW)
        first = first or made
    extra, = clinic()

    error = _refused("resident_too_many_active", booking.book_slot, resident_id=resident.id,
                     patient_id=members[-1].id, slot_id=extra.id, now=NOW)

    assert str(RESIDENT_CAP) in error.message
    assert _booked(resident.id) == RESIDENT_CAP
    assert_slot_consistent(extra.id)
    booking.cancel_appointment(resident_id=resident.id, appointment_id=first.id, now=NOW)
    assert booking.book_slot(resident_id=resident.id, patient_id=members[-1].id, slot_id=extra.id, now=NOW)


def test_a_resident_takes_at_most_two_seats_of_one_department_day(session):
    slot, = clinic(capacity=10)
    resident, own = resident_with_patient()
    one, two = _family(resident, 2)
    booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    booking.book_slot(resident_id=resident.id, patient_id=one.id, slot_id=slot.id, now=NOW)

    error = _refused("resident_daily_limit", booking.book_slot, resident_id=resident.id, patient_id=two.id,
                     slot_id=slot.id, now=NOW)

    assert str(DEPARTMENT_DAY_CAP) in error.message
    assert _booked(resident.id) == DEPARTMENT_DAY_CAP
    assert_slot_consistent(slot.id)
    next_day, = clinic(day=DAY + timedelta(days=1), department=slot.department)
    assert booking.book_slot(resident_id=resident.id, patient_id=two.id, slot_id=next_day.id, now=NOW)


def test_rescheduling_into_a_department_day_at_the_cap_is_refused(session):
    morning, later = clinic(slots=2, capacity=10)
    next_day, = clinic(day=DAY + timedelta(days=1), department=morning.department)
    resident, own = resident_with_patient()
    one, two = _family(resident, 2)
    booking.book_slot(resident_id=resident.id, slot_id=morning.id, now=NOW)
    moving = booking.book_slot(resident_id=resident.id, patient_id=one.id, slot_id=morning.id, now=NOW)
    elsewhere = booking.book_slot(resident_id=resident.id, patient_id=two.id, slot_id=next_day.id, now=NOW)

    _refused("resident_daily_limit", booking.reschedule_appointment, resident_id=resident.id,
             appointment_id=elsewhere.id, new_slot_id=later.id, now=NOW)

    assert db.session.get(Appointment, elsewhere.id).status == "booked"
    for slot in (morning, later, next_day):
        assert_slot_consistent(slot.id)
    # Moving within the day it already counts in is no new seat of that day.
    assert booking.reschedule_appointment(resident_id=resident.id, appointment_id=moving.id,
                                          new_slot_id=later.id, now=NOW)


def test_the_caps_hold_on_every_route_that_books(client, app):
    """The app (/api/v1), the bot (/api/internal) and the deprecated /api/booking all end in book_slot."""
    tokens = sign_in(client, app, "13800000126")
    resident_id = tokens["resident_id"]
    resident = db.session.get(Resident, resident_id)
    conversation = ConversationFactory(resident=resident)
    own = PatientFactory(resident=resident)
    one, two, three = _family(resident, 3)
    day = datetime.now(SHANGHAI).date() + timedelta(days=3)  # routes take the clock's time
    department = DepartmentFactory()
    slot = SlotFactory(doctor__department=department, department=department, day=day, at=time(9, 0), capacity=10)
    db.session.commit()
    for patient in (one, two):
        booking.book_slot(resident_id=resident_id, patient_id=patient.id, slot_id=slot.id)

    answers = {
        "v1": client.post("/api/v1/appointments", headers=idem(tokens),
                          json={"slot_id": slot.id, "patient_id": three.id}),
        "bot": client.post("/api/internal/appointments", headers=SERVICE,
                           json={"sender": conversation.bot_sender, "slot_id": slot.id}),
        "deprecated": client.post(f"/api/booking/residents/{resident_id}/appointments", headers=SERVICE,
                                  json={"slot_id": slot.id, "patient_id": own.id}),
    }

    assert {route: error_code(answer, 409) for route, answer in answers.items()} == dict.fromkeys(
        answers, "resident_daily_limit")
    assert _booked(resident_id) == DEPARTMENT_DAY_CAP


# --- under concurrency (PostgreSQL) ------------------------------------------------------------------



def _book(resident_id, patient_id, slot_id):
    return lambda: booking.book_slot(resident_id=resident_id, patient_id=patient_id, slot_id=slot_id, now=NOW).id


@pytest.mark.timeout(120)
def test_two_family_members_racing_for_the_last_place_of_a_department_day_get_one(app, committed):
    # Several residents race at once, so a missing lock has many chances to show.
    calls, residents = [], []
    for _ in range(8):
        slot, = clinic(capacity=10)
        resident, _ = resident_with_patient()
        one, two = _family(resident, 2)
        db.session.commit()
        booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)  # one place of two left
        calls += [_book(resident.id, one.id, slot.id), _book(resident.id, two.id, slot.id)]
        residents.append((resident.id, slot.id))

    outcomes = race(app, calls)

    for n, (resident_id, slot_id) in enumerate(residents):
        pair = outcomes[2 * n:2 * n + 2]
        assert len([o for o in pair if isinstance(o, int)]) == 1, pair
        assert [o for o in pair if not isinstance(o, int)] == ["resident_daily_limit"], pair
        assert _booked(resident_id) == DEPARTMENT_DAY_CAP
        assert_slot_consistent(slot_id)


@pytest.mark.timeout(120)
def test_two_family_members_racing_for_the_last_of_the_residents_bookings_get_one(app, committed):
    calls, residents = [], []
    for _ in range(8):
        resident, own = resident_with_patient()
        members = _family(resident, FAMILY_CAP)
        db.session.commit()
        for patient in [own, *members][:RESIDENT_CAP - 1]:
            slot, = clinic()
            db.session.commit()
            booking.book_slot(resident_id=resident.id, patient_id=patient.id, slot_id=slot.id, now=NOW)
        racers = [own, members[-1]]  # own holds one booking (of three), the last member none
        slots = [clinic()[0] for _ in racers]
        db.session.commit()
        calls += [_book(resident.id, p.id, s.id) for p, s in zip(racers, slots)]
        residents.append(resident.id)

    outcomes = race(app, calls)

    for n, resident_id in enumerate(residents):
        pair = outcomes[2 * n:2 * n + 2]
        assert len([o for o in pair if isinstance(o, int)]) == 1, pair
        assert [o for o in pair if not isinstance(o, int)] == ["resident_too_many_active"], pair
        assert _booked(resident_id) == RESIDENT_CAP


@pytest.mark.timeout(120)
def test_two_family_members_added_at_once_at_the_cap_get_one_place(app, committed):
    calls, residents = [], []
    for _ in range(8):
        resident, _ = resident_with_patient()
        _family(resident, FAMILY_CAP - 1)
        db.session.commit()
        calls += [lambda rid=resident.id, n=n: patients.add_patient(
            resident_id=rid, name="新家人", id_number=_id(n), relation="child").id for n in range(2)]
        residents.append(resident.id)

    outcomes = race(app, calls)

    for n, resident_id in enumerate(residents):
        pair = outcomes[2 * n:2 * n + 2]
        assert [o for o in pair if not isinstance(o, int)] == ["too_many_family_members"], pair
        assert db.session.scalar(select(func.count()).select_from(Patient).where(
            Patient.resident_id == resident_id, Patient.relation != "self")) == FAMILY_CAP
