"""Held seats: a chosen slot's seat is set aside while the resident confirms, counts against capacity and the
booking caps, frees itself once its time is up (lazily and by the periodic job), and a hold past its time is
never confirmed. Racing residents holding and confirming get exactly the seats there are."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.errors import DomainError
from app.core.extensions import db
from app.models import Appointment, Resident, Slot, SlotHold
from app.services import booking
from app.services.booking import holds
from app.services.booking import jobs as booking_jobs
from app.services.booking.calendar import SHANGHAI
from tests.conftest import sqlite_app_for
from tests.factories import ConversationFactory, PatientFactory, ResidentFactory, SlotFactory
from tests.helpers.booking import NOW, assert_seats_add_up, clinic, race, resident_with_patient
from tests.helpers.mobile import bearer, error_code, idem, sign_in

HOLD = timedelta(seconds=300)  # BOOKING_HOLD_SECONDS's default
AUTH = {"Authorization": "Bearer test-bot-token"}


def _refused(code: str, call, **kwargs):
    # A refusal rolls back the service's transaction; keep the test's own data out of that.
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


def _booked(slot_id: int) -> list[int]:
    return list(db.session.scalars(select(Appointment.booked_by_resident_id).where(
        Appointment.slot_id == slot_id, Appointment.status == "booked")))


# --- a hold sets a seat aside -------------------------------------------------------------------------------------

def test_a_hold_takes_the_last_seat_from_everyone_else_until_it_is_confirmed(session):
    slot, = clinic(capacity=1)
    first, _ = resident_with_patient()
    second, _ = resident_with_patient()

    hold = booking.hold_slot(resident_id=first.id, slot_id=slot.id, now=NOW)

    assert (hold.kind, hold.status, hold.expires_at) == ("hold", "held", NOW + HOLD)
    assert booking.search_free_slots(department=slot.department_id, date_from=slot.local_date, now=NOW) == []
    _refused("slot_taken", booking.hold_slot, resident_id=second.id, slot_id=slot.id, now=NOW)
    _refused("slot_taken", booking.book_slot, resident_id=second.id, slot_id=slot.id, now=NOW)
    assert_seats_add_up(slot.id)

    appointment = booking.confirm_hold(resident_id=first.id, hold_id=hold.id, now=NOW + HOLD - timedelta(seconds=1))

    assert (appointment.status, appointment.seat_no, appointment.slot_id) == ("booked", 1, slot.id)
    db.session.refresh(hold)
    assert (hold.status, hold.appointment_id) == ("confirmed", appointment.id)
    assert _booked(slot.id) == [first.id]
    assert_seats_add_up(slot.id)
    # A retried confirmation answers the same appointment and books nothing more.
    again = booking.confirm_hold(resident_id=first.id, hold_id=hold.id, now=NOW + HOLD + timedelta(minutes=1))
    assert again.id == appointment.id and _booked(slot.id) == [first.id]


def test_a_hold_past_its_time_frees_the_seat_for_another_resident_lazily(session):
    slot, = clinic(capacity=1)
    first, _ = resident_with_patient()
    second, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=first.id, slot_id=slot.id, now=NOW)
    later = NOW + HOLD

    # Nothing ended the hold yet, but search already counts its seat as free...
    found, = booking.search_free_slots(department=slot.department_id, date_from=slot.local_date, now=later)
    assert (found.id, found.free) == (slot.id, 1)
    # ...and the next resident gets it: the expired hold is ended by the hold that needs its seat.
    taken = booking.hold_slot(resident_id=second.id, slot_id=slot.id, now=later)

    db.session.refresh(hold)
    assert (hold.status, hold.ended_at) == ("expired", later)
    assert taken.status == "held" and taken.resident_id == second.id
    assert_seats_add_up(slot.id)


def test_a_booking_takes_a_seat_whose_hold_ran_out(session):
    slot, = clinic(capacity=1)
    first, _ = resident_with_patient()
    second, _ = resident_with_patient()
    booking.hold_slot(resident_id=first.id, slot_id=slot.id, now=NOW)

    appointment = booking.book_slot(resident_id=second.id, slot_id=slot.id, now=NOW + HOLD + timedelta(seconds=1))

    assert appointment.seat_no == 1 and _booked(slot.id) == [second.id]
    assert_seats_add_up(slot.id)


def test_the_periodic_job_ends_holds_past_their_time(session):
    """booking.release_expired_holds (every 30 s) on the real clock: the seat is free before anyone asks for it."""
    now = datetime.now(timezone.utc)
    visit_day = now.astimezone(SHANGHAI).date() + timedelta(days=2)
    slot = SlotFactory(day=visit_day, at=time(9, 0), capacity=1)
    expired_resident, _ = resident_with_patient()
    live_resident, _ = resident_with_patient()
    other_slot = SlotFactory(day=visit_day, at=time(10, 0), capacity=1)
    expired = booking.hold_slot(resident_id=expired_resident.id, slot_id=slot.id, now=now - HOLD - timedelta(minutes=1))
    alive = booking.hold_slot(resident_id=live_resident.id, slot_id=other_slot.id, now=now)
    job = tasks.task("booking.release_expired_holds")
    assert job.periodic and job.every_seconds <= 60

    assert booking_jobs.release_expired_holds() == 1

    db.session.refresh(expired)
    db.session.refresh(alive)
    assert (expired.status, alive.status) == ("expired", "held")
    assert db.session.get(Slot, slot.id).held_count == 0
    assert_seats_add_up(slot.id)
    assert_seats_add_up(other_slot.id)
    assert booking_jobs.release_expired_holds() == 0  # ended once: its seat is given back once


def test_confirming_a_hold_past_its_time_is_refused_and_books_nothing(session):
    slot, = clinic(capacity=2)
    resident, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)

    refusal = _refused("hold_expired", booking.confirm_hold, resident_id=resident.id, hold_id=hold.id, now=NOW + HOLD)

    assert refusal.status == 409
    assert _booked(slot.id) == []
    db.session.refresh(hold)
    assert hold.status == "expired" and hold.appointment_id is None
    assert (db.session.get(Slot, slot.id).booked_count, db.session.get(Slot, slot.id).held_count) == (0, 0)
    # And stays refused: the resident chooses again.
    _refused("hold_expired", booking.confirm_hold, resident_id=resident.id, hold_id=hold.id, now=NOW + 2 * HOLD)
    assert _booked(slot.id) == []


def test_holding_again_answers_the_same_hold_and_a_second_slot_of_the_day_is_refused(session):
    first, second = clinic(slots=2, capacity=2)
    resident, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=resident.id, slot_id=first.id, now=NOW)

    assert booking.hold_slot(resident_id=resident.id, slot_id=first.id, now=NOW + timedelta(seconds=5)).id == hold.id
    refusal = _refused("already_holding", booking.hold_slot, resident_id=resident.id, slot_id=second.id, now=NOW)
    assert refusal.details["hold_id"] == hold.id
    _refused("already_holding", booking.book_slot, resident_id=resident.id, slot_id=second.id, now=NOW)
    assert db.session.get(Slot, first.id).held_count == 1 and db.session.get(Slot, second.id).held_count == 0
    # Once released, the other slot can be held.
    booking.release_hold(resident_id=resident.id, hold_id=hold.id, now=NOW)
    assert booking.hold_slot(resident_id=resident.id, slot_id=second.id, now=NOW).slot_id == second.id
    assert_seats_add_up(first.id)
    assert_seats_add_up(second.id)


def test_a_patients_own_hold_past_its_time_does_not_stand_in_the_way_of_the_next(session):
    first, second = clinic(slots=2, capacity=1)
    resident, _ = resident_with_patient()
    stale = booking.hold_slot(resident_id=resident.id, slot_id=first.id, now=NOW)

    fresh = booking.hold_slot(resident_id=resident.id, slot_id=second.id, now=NOW + HOLD)

    db.session.refresh(stale)
    assert (stale.status, fresh.status, fresh.slot_id) == ("expired", "held", second.id)
    assert_seats_add_up(first.id)
    assert_seats_add_up(second.id)


def test_holds_count_against_the_per_resident_caps(session, app, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_MAX_PER_RESIDENT_DEPARTMENT_DAY", 2)
    slot, = clinic(capacity=5)
    resident, own = resident_with_patient()
    mother = PatientFactory(resident=resident, relation="parent")
    father = PatientFactory(resident=resident, relation="parent")
    holds_made = [booking.hold_slot(resident_id=resident.id, slot_id=slot.id, patient_id=p.id, now=NOW)
                  for p in (own, mother)]

    # Two seats of that day held: a third, held or booked, passes the cap of 2.
    _refused("resident_daily_limit", booking.hold_slot, resident_id=resident.id, slot_id=slot.id,
             patient_id=father.id, now=NOW)
    _refused("resident_daily_limit", booking.book_slot, resident_id=resident.id, slot_id=slot.id,
             patient_id=father.id, now=NOW)
    # Confirming a hold does not count that hold twice.
    for hold in holds_made:
        booking.confirm_hold(resident_id=resident.id, hold_id=hold.id, now=NOW)
    assert sorted(_booked(slot.id)) == [resident.id, resident.id]
    assert_seats_add_up(slot.id)


def test_releasing_gives_the_seat_back_once_and_a_confirmed_hold_cannot_be_released(session):
    slot, = clinic(capacity=1)
    resident, _ = resident_with_patient()
    other, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)

    released = booking.release_hold(resident_id=resident.id, hold_id=hold.id, now=NOW)
    assert released.status == "released"
    assert booking.release_hold(resident_id=resident.id, hold_id=hold.id, now=NOW).status == "released"
    assert_seats_add_up(slot.id)
    _refused("hold_released", booking.confirm_hold, resident_id=resident.id, hold_id=hold.id, now=NOW)

    taken = booking.hold_slot(resident_id=other.id, slot_id=slot.id, now=NOW)
    booking.confirm_hold(resident_id=other.id, hold_id=taken.id, now=NOW)
    _refused("hold_confirmed", booking.release_hold, resident_id=other.id, hold_id=taken.id, now=NOW)
    assert _booked(slot.id) == [other.id]
    assert_seats_add_up(slot.id)


def test_another_residents_hold_is_unknown(session):
    slot, = clinic()
    owner, _ = resident_with_patient()
    stranger, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=owner.id, slot_id=slot.id, now=NOW)
    for call in (booking.confirm_hold, booking.release_hold):
        _refused("not_found", call, resident_id=stranger.id, hold_id=hold.id, now=NOW)
    db.session.refresh(hold)
    assert hold.status == "held"


def test_the_database_refuses_more_booked_and_held_seats_than_capacity(session):
    slot, = clinic(capacity=2)
    db.session.execute(text("UPDATE slots SET booked_count = 1, held_count = 1 WHERE id = :id"), {"id": slot.id})
    with pytest.raises(IntegrityError, match="ck_slots_seats_within_capacity"):
        with db.session.begin_nested():
            db.session.execute(text("UPDATE slots SET held_count = 2 WHERE id = :id"), {"id": slot.id})


# --- racing residents -------------------------------------------------------------------------------------------

def _residents(n: int) -> list[int]:
    residents = [ResidentFactory() for _ in range(n)]
    for resident in residents:
        PatientFactory(resident=resident)
    return [r.id for r in residents]


def _hold_and_confirm(resident_id: int, slot_id: int):
    def call():
        hold = holds.hold_slot(resident_id=resident_id, slot_id=slot_id, now=NOW)
        return holds.confirm_hold(resident_id=resident_id, hold_id=hold.id, now=NOW).id
    return call


@pytest.mark.timeout(120)
def test_forty_residents_holding_and_confirming_the_last_five_seats_get_five(app, committed):
    slot, = clinic(capacity=8)
    early = _residents(3)
    racers = _residents(40)
    slot_id = slot.id
    db.session.commit()
    for resident_id in early:
        booking.book_slot(resident_id=resident_id, slot_id=slot_id, now=NOW)

    outcomes = race(app, [_hold_and_confirm(r, slot_id) for r in racers])

    won = [o for o in outcomes if isinstance(o, int)]
    assert len(won) == 5
    assert Counter(o for o in outcomes if not isinstance(o, int)) == {"slot_taken": 35}
    holders = _booked(slot_id)
    assert len(holders) == 8 and len(set(holders)) == 8
    assert db.session.scalar(select(func.count()).select_from(SlotHold).where(
        SlotHold.slot_id == slot_id, SlotHold.status == "confirmed")) == 5
    assert_seats_add_up(slot_id)


@pytest.mark.timeout(120)
def test_holds_racing_direct_bookings_never_share_a_seat(app, committed):
    slot, = clinic(capacity=6)
    racers = _residents(30)
    slot_id = slot.id
    db.session.commit()

    calls = [_hold_and_confirm(r, slot_id) if i % 2 else
             (lambda r=r: booking.book_slot(resident_id=r, slot_id=slot_id, now=NOW).id) for i, r in enumerate(racers)]
    outcomes = race(app, calls)

    assert len([o for o in outcomes if isinstance(o, int)]) == 6
    assert set(o for o in outcomes if not isinstance(o, int)) == {"slot_taken"}
    assert len(_booked(slot_id)) == 6
    assert_seats_add_up(slot_id)


@pytest.mark.timeout(120)
def test_a_hold_confirmed_released_and_swept_at_once_ends_exactly_once(app, committed):
    """Its owner confirming and releasing it in several requests while sweeps find it past its time (their clock a
    little ahead): one of them ends it, the others see how it ended, and its seat is counted once."""
    slot, = clinic(capacity=1)
    resident_id, = _residents(1)
    slot_id = slot.id
    db.session.commit()
    hold_id = booking.hold_slot(resident_id=resident_id, slot_id=slot_id, now=NOW).id
    before_expiry, after_expiry = NOW + HOLD - timedelta(seconds=1), NOW + HOLD + timedelta(seconds=1)

    calls = [lambda: booking.confirm_hold(resident_id=resident_id, hold_id=hold_id, now=before_expiry).id] * 6
    calls += [lambda: booking.release_hold(resident_id=resident_id, hold_id=hold_id, now=before_expiry).status] * 6
    calls += [lambda: holds.release_expired_holds(now=after_expiry)] * 6
    outcomes = race(app, calls)

    ended = db.session.scalar(select(SlotHold.status).where(SlotHold.id == hold_id))
    appointments = set(outcomes[:6]) - {"hold_released", "hold_expired"}
    if ended == "confirmed":
        assert len(appointments) == 1 and _booked(slot_id) == [resident_id]
        assert set(outcomes[6:12]) == {"hold_confirmed"}
    else:
        assert appointments == set() and _booked(slot_id) == []
        assert set(outcomes[6:12]) == {ended}
    assert sum(outcomes[12:]) == (ended == "expired")
    assert_seats_add_up(slot_id)


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    return sqlite_app_for(tmp_path_factory, "holds")


@pytest.mark.timeout(120)
def test_on_sqlite_racing_holds_and_confirmations_get_exactly_the_free_seats(sqlite_app, sqlite_committed):
    slot, = clinic(capacity=3)
    racers = _residents(15)
    slot_id = slot.id
    db.session.commit()

    outcomes = race(sqlite_app, [_hold_and_confirm(r, slot_id) for r in racers])

    assert len([o for o in outcomes if isinstance(o, int)]) == 3
    assert Counter(o for o in outcomes if not isinstance(o, int)) == {"slot_taken": 12}
    assert_seats_add_up(slot_id)


# --- the routes: /api/v1 for residents, /api/internal for the bot -----------------------------------------------

VISIT_DAY = datetime.now(SHANGHAI).date() + timedelta(days=3)  # routes take the clock's time


def test_a_resident_holds_confirms_and_releases_through_the_app(client, app, session):
    tokens = sign_in(client, app, "13800000031")
    PatientFactory(resident=db.session.get(Resident, tokens["resident_id"]), relation="self")
    slot = SlotFactory(day=VISIT_DAY, at=time(9, 0), capacity=1)
    other = SlotFactory(day=VISIT_DAY + timedelta(days=1), at=time(9, 0), capacity=1)
    db.session.commit()

    held = client.post("/api/v1/holds", headers=idem(tokens), json={"slot_id": slot.id})
    assert held.status_code == 201, held.get_data(as_text=True)
    body = held.get_json()["hold"]
    assert (body["slot_id"], body["status"], body["kind"]) == (slot.id, "held", "hold")
    assert body["expires_at"].endswith("+08:00") and body["patient"]["id_number_masked"].startswith("*")

    confirmed = client.post(f"/api/v1/holds/{body['id']}/confirm", headers=idem(tokens))
    assert confirmed.status_code == 201
    assert confirmed.get_json()["appointment"]["slot_id"] == slot.id
    assert error_code(client.delete(f"/api/v1/holds/{body['id']}", headers=idem(tokens)), 409) == "hold_confirmed"

    second = client.post("/api/v1/holds", headers=idem(tokens), json={"slot_id": other.id}).get_json()["hold"]
    released = client.delete(f"/api/v1/holds/{second['id']}", headers=idem(tokens))
    assert released.status_code == 200 and released.get_json()["hold"]["status"] == "released"
    assert error_code(client.post(f"/api/v1/holds/{second['id']}/confirm", headers=idem(tokens)), 409) \
        == "hold_released"
    assert error_code(client.post("/api/v1/holds/999999/confirm", headers=bearer(tokens)), 404) == "not_found"


def test_the_bot_holds_and_confirms_for_its_sender_and_gets_stable_codes(client, session):
    conversation = ConversationFactory(resident=ResidentFactory())
    PatientFactory(resident=conversation.resident, name="张阿姨")
    rival = ConversationFactory(resident=ResidentFactory())
    PatientFactory(resident=rival.resident)
    slot = SlotFactory(day=VISIT_DAY, at=time(9, 0), capacity=1)
    db.session.commit()
    sender = conversation.bot_sender

    held = client.post("/api/internal/holds", json={"sender": sender, "slot_id": slot.id}, headers=AUTH)
    assert held.status_code == 201
    hold = held.get_json()["hold"]
    assert set(hold) == {"id", "kind", "status", "slot_id", "department", "doctor", "start", "expires_at",
                         "patient_name"}
    assert hold["patient_name"] == "张阿姨"
    db.session.commit()
    taken = client.post("/api/internal/holds", json={"sender": rival.bot_sender, "slot_id": slot.id}, headers=AUTH)
    assert error_code(taken, 409) == "slot_taken"
    foreign = client.post(f"/api/internal/holds/{hold['id']}/confirm", json={"sender": rival.bot_sender},
                          headers=AUTH)
    assert error_code(foreign, 404) == "not_found"

    confirmed = client.post(f"/api/internal/holds/{hold['id']}/confirm", json={"sender": sender}, headers=AUTH)
    assert confirmed.status_code == 201
    assert confirmed.get_json()["appointment"]["patient_name"] == "张阿姨"
    released = client.post(f"/api/internal/holds/{hold['id']}/release", json={"sender": sender}, headers=AUTH)
    assert error_code(released, 409) == "hold_confirmed"
