"""The waitlist of a full department's day: a seat given back is offered to the first in line on their channel,
for a limited time, then to the next; an accepted offer books atomically, a lapsed one is refused, and no seat is
ever booked twice."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.core.errors import DomainError
from app.core.extensions import db
from app.models import Appointment, Conversation, OutboundMessage, Resident, Slot, SlotHold, WaitlistEntry
from app.services import booking, outbox
from app.services.booking import holds
from app.services.booking.calendar import SHANGHAI
from tests.factories import ConversationFactory, DepartmentFactory, PatientFactory, ResidentFactory, SlotFactory
from tests.helpers.booking import DAY, NOW, assert_seats_add_up, clinic, race, resident_with_patient
from tests.helpers.mobile import bearer, error_code, idem, sign_in

HOLD = timedelta(seconds=300)  # BOOKING_HOLD_SECONDS's default
OFFER = timedelta(seconds=1800)  # BOOKING_OFFER_SECONDS's default
AUTH = {"Authorization": "Bearer test-bot-token"}


@pytest.fixture(autouse=True)
def dispatched(monkeypatch):
    """Delivery jobs are the outbox's business; here we only record which rows were handed over."""
    handed_over = []
    monkeypatch.setattr(outbox, "dispatch", lambda *, outbound_ids: handed_over.extend(outbound_ids))
    return handed_over


def _refused(code: str, call, **kwargs):
    db.session.commit()  # a refusal rolls back the service's transaction; keep the test's own data out of that
    with pytest.raises(DomainError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


def _full_day(capacity: int = 1):
    """A slot of DAY whose seats are all booked; returns (slot, the appointments)."""
    slot, = clinic(capacity=capacity)
    taken = []
    for _ in range(capacity):
        resident, _ = resident_with_patient()
        taken.append(booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW))
    return slot, taken


def _waiting(slot, n: int):
    """n residents (each with a WeChat conversation) in line for the slot's department and day, in order."""
    line = []
    for i in range(n):
        resident, _ = resident_with_patient(conversation=True)
        line.append((resident, booking.join_waitlist(resident_id=resident.id, department_id=slot.department_id,
                                                     day=slot.local_date, now=NOW + timedelta(seconds=i))))
    return line


def _notices(resident_id: int) -> list[OutboundMessage]:
    return list(db.session.scalars(
        select(OutboundMessage).join(Conversation, Conversation.id == OutboundMessage.conversation_id)
        .where(OutboundMessage.kind == "waitlist_offer", Conversation.resident_id == resident_id)
        .order_by(OutboundMessage.id)))


def _booked(slot_id: int) -> list[int]:
    return list(db.session.scalars(select(Appointment.booked_by_resident_id).where(
        Appointment.slot_id == slot_id, Appointment.status == "booked").order_by(Appointment.id)))


def _entry(entry_id: int) -> WaitlistEntry:
    return db.session.execute(select(WaitlistEntry).where(WaitlistEntry.id == entry_id)
                              .execution_options(populate_existing=True)).scalar_one()


# --- joining ----------------------------------------------------------------------------------------------------

def test_only_a_full_released_day_with_slots_ahead_can_be_joined(session):
    slot, = clinic(capacity=1)
    resident, _ = resident_with_patient()
    join = dict(resident_id=resident.id, department_id=slot.department_id, day=slot.local_date, now=NOW)

    refusal = _refused("seats_available", booking.join_waitlist, **join)
    assert refusal.details["slot_id"] == slot.id
    _refused("slot_not_released", booking.join_waitlist, **{**join, "now": NOW - timedelta(days=8)})
    _refused("no_slots", booking.join_waitlist, **{**join, "day": DAY + timedelta(days=1)})
    _refused("not_found", booking.join_waitlist, **{**join, "department_id": 999999})
    # A seat held by somebody else counts as taken: that day is full.
    other, _ = resident_with_patient()
    booking.hold_slot(resident_id=other.id, slot_id=slot.id, now=NOW)
    entry = booking.join_waitlist(**join)
    assert (entry.status, entry.position, entry.patient.resident_id) == ("waiting", 1, resident.id)


def test_joining_twice_is_refused_but_a_family_member_may_join_too(session):
    slot, _ = _full_day()
    (resident, entry), = _waiting(slot, 1)
    mother = PatientFactory(resident=resident, relation="parent")

    refusal = _refused("already_waiting", booking.join_waitlist, resident_id=resident.id,
                       department_id=slot.department_id, day=slot.local_date, now=NOW)

    assert refusal.status == 409 and refusal.details["entry_id"] == entry.id
    second = booking.join_waitlist(resident_id=resident.id, department_id=slot.department_id, day=slot.local_date,
                                   patient_id=mother.id, now=NOW)
    assert second.position == 2
    assert db.session.query(WaitlistEntry).filter_by(resident_id=resident.id).count() == 2


def test_a_patient_booked_that_day_cannot_join(session):
    slot, (appointment,) = _full_day()
    _refused("daily_limit", booking.join_waitlist, resident_id=appointment.booked_by_resident_id,
             department_id=slot.department_id, day=slot.local_date, now=NOW)


# --- offers -----------------------------------------------------------------------------------------------------

def test_a_cancellation_offers_the_seat_to_the_first_in_line_on_their_channel(session, dispatched):
    slot, (appointment,) = _full_day()
    (first, first_entry), (second, second_entry) = _waiting(slot, 2)
    outsider, _ = resident_with_patient()

    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)

    first_entry, second_entry = _entry(first_entry.id), _entry(second_entry.id)
    assert (first_entry.status, second_entry.status) == ("offered", "waiting")
    offer = db.session.scalar(select(SlotHold).where(SlotHold.waitlist_entry_id == first_entry.id))
    assert (offer.kind, offer.status, offer.slot_id, offer.expires_at) == ("offer", "held", slot.id, NOW + OFFER)
    # The seat is the offer's: nobody else can take it meanwhile.
    _refused("slot_taken", booking.book_slot, resident_id=outsider.id, slot_id=slot.id, now=NOW)
    assert_seats_add_up(slot.id)
    notice, = _notices(first.id)
    assert notice.dedup_key == f"waitlist-offer:{offer.id}" and _notices(second.id) == []
    assert "候补" in notice.body and notice.id in dispatched
    assert offer.notified_at == NOW
    listed = booking.list_waitlist(resident_id=second.id, now=NOW)
    assert [(e.id, e.status, e.position) for e in listed] == [(second_entry.id, "waiting", 1)]


def test_offers_go_in_order_and_a_lapsed_offer_moves_on_to_the_next(session):
    """First lapses (the periodic job) -> second offered -> accepts -> booked; the first accepting after the lapse
    is refused, and the seat is booked once."""
    slot, (appointment,) = _full_day()
    (first, first_entry), (second, second_entry), (third, third_entry) = _waiting(slot, 3)
    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)
    lapse = NOW + OFFER

    assert holds.release_expired_holds(now=lapse) == 1

    assert [_entry(e.id).status for e in (first_entry, second_entry, third_entry)] == ["lapsed", "offered", "waiting"]
    second_offer = db.session.scalar(select(SlotHold).where(SlotHold.waitlist_entry_id == second_entry.id))
    assert second_offer.expires_at == lapse + OFFER and second_offer.notified_at == lapse
    appointment = booking.accept_offer(resident_id=second.id, entry_id=second_entry.id,
                                       now=lapse + timedelta(minutes=5))
    assert (appointment.status, appointment.slot_id, appointment.booked_by_resident_id) == \
        ("booked", slot.id, second.id)
    assert _entry(second_entry.id).status == "booked"

    refusal = _refused("offer_lapsed", booking.accept_offer, resident_id=first.id, entry_id=first_entry.id,
                       now=lapse + timedelta(minutes=6))
    assert refusal.status == 409
    assert _booked(slot.id) == [second.id]
    assert _entry(third_entry.id).status == "waiting"  # no seat left to offer
    assert_seats_add_up(slot.id)
    # Accepting twice answers the same appointment.
    assert booking.accept_offer(resident_id=second.id, entry_id=second_entry.id, now=lapse).id == appointment.id
    assert _booked(slot.id) == [second.id]


def test_accepting_after_the_lapse_is_refused_and_moves_the_seat_on_at_once(session):
    """Lazily: the late answer itself ends the lapsed offer, before the periodic job comes round."""
    slot, (appointment,) = _full_day()
    (first, first_entry), (second, second_entry) = _waiting(slot, 2)
    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)

    _refused("offer_lapsed", booking.accept_offer, resident_id=first.id, entry_id=first_entry.id, now=NOW + OFFER)

    assert (_entry(first_entry.id).status, _entry(second_entry.id).status) == ("lapsed", "offered")
    assert _booked(slot.id) == []
    assert len(_notices(second.id)) == 1
    booking.accept_offer(resident_id=second.id, entry_id=second_entry.id, now=NOW + OFFER)
    assert _booked(slot.id) == [second.id]
    assert_seats_add_up(slot.id)


def test_a_hold_that_runs_out_offers_its_seat_to_the_waitlist(session):
    slot, = clinic(capacity=1)
    holder, _ = resident_with_patient()
    hold = booking.hold_slot(resident_id=holder.id, slot_id=slot.id, now=NOW)
    (waiter, entry), = _waiting(slot, 1)  # the day is full while the seat is held

    # Somebody wants the seat once the hold is over: the waitlist comes first.
    latecomer, _ = resident_with_patient()
    _refused("slot_taken", booking.hold_slot, resident_id=latecomer.id, slot_id=slot.id, now=NOW + HOLD)

    db.session.refresh(hold)
    assert (hold.status, _entry(entry.id).status) == ("expired", "offered")
    _refused("hold_expired", booking.confirm_hold, resident_id=holder.id, hold_id=hold.id, now=NOW + HOLD)
    booking.accept_offer(resident_id=waiter.id, entry_id=entry.id, now=NOW + HOLD)
    assert _booked(slot.id) == [waiter.id]
    assert_seats_add_up(slot.id)


def test_declining_or_leaving_hands_the_offer_to_the_next_and_leaving_twice_changes_nothing(session):
    slot, (appointment,) = _full_day()
    (first, first_entry), (second, second_entry), (third, third_entry) = _waiting(slot, 3)
    _refused("no_offer", booking.accept_offer, resident_id=first.id, entry_id=first_entry.id, now=NOW)
    # The third leaves while waiting.
    assert booking.leave_waitlist(resident_id=third.id, entry_id=third_entry.id, now=NOW).status == "left"
    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)

    left = booking.leave_waitlist(resident_id=first.id, entry_id=first_entry.id, now=NOW + timedelta(minutes=1))

    assert left.status == "left" and left.offer is None
    assert _entry(second_entry.id).status == "offered"
    assert booking.leave_waitlist(resident_id=first.id, entry_id=first_entry.id, now=NOW).status == "left"
    _refused("not_in_line", booking.accept_offer, resident_id=first.id, entry_id=first_entry.id, now=NOW)
    _refused("not_found", booking.leave_waitlist, resident_id=first.id, entry_id=second_entry.id, now=NOW)
    # Declining through the hold works the same way: the seat is free again once nobody waits.
    offer = db.session.scalar(select(SlotHold).where(SlotHold.waitlist_entry_id == second_entry.id))
    booking.release_hold(resident_id=second.id, hold_id=offer.id, now=NOW + timedelta(minutes=2))
    assert _entry(second_entry.id).status == "left"
    assert db.session.get(Slot, slot.id).free == 1
    assert _booked(slot.id) == []
    assert_seats_add_up(slot.id)


def test_a_waiter_who_booked_meanwhile_is_passed_over(session):
    slot, (appointment,) = _full_day()
    (first, first_entry), (second, second_entry) = _waiting(slot, 2)
    # The first books another slot of that day, freed and taken before the line noticed.
    other = SlotFactory(doctor=slot.doctor, department=slot.department, day=DAY, at=time(11, 0), capacity=1)
    booking.book_slot(resident_id=first.id, slot_id=other.id, now=NOW)

    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)

    assert (_entry(first_entry.id).status, _entry(second_entry.id).status) == ("booked", "offered")


def test_a_moved_booking_offers_its_old_seat_to_the_line(session):
    slot, (appointment,) = _full_day()
    (waiter, entry), = _waiting(slot, 1)
    later = SlotFactory(doctor=slot.doctor, department=slot.department, day=DAY + timedelta(days=1), at=time(9, 0))

    booking.reschedule_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id,
                                   new_slot_id=later.id, now=NOW)

    assert _entry(entry.id).status == "offered"
    booking.accept_offer(resident_id=waiter.id, entry_id=entry.id, now=NOW)
    assert _booked(slot.id) == [waiter.id]
    assert_seats_add_up(slot.id)
    assert_seats_add_up(later.id)


def test_a_lost_notice_is_sent_by_the_periodic_job_once(session, monkeypatch):
    slot, (appointment,) = _full_day()
    (waiter, entry), = _waiting(slot, 1)
    from app.services.booking import seats

    def lost(**kwargs):
        raise ConnectionError("the process died between the two commits")

    with monkeypatch.context() as patch:
        patch.setattr(seats, "notify_offer", lost)
        booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id,
                                   now=NOW)
    assert _entry(entry.id).status == "offered" and _notices(waiter.id) == []

    holds.release_expired_holds(now=NOW + timedelta(seconds=30))
    holds.release_expired_holds(now=NOW + timedelta(seconds=60))

    assert len(_notices(waiter.id)) == 1


# --- racing cancellations and a line -----------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_racing_cancellations_offer_each_freed_seat_to_a_different_waiter_in_order(app, committed):
    slot, taken = _full_day(capacity=6)
    line = _waiting(slot, 4)
    slot_id = slot.id
    cancels = [(a.booked_by_resident_id, a.id) for a in taken]
    db.session.commit()

    outcomes = race(app, [lambda r=r, a=a: booking.cancel_appointment(resident_id=r, appointment_id=a, now=NOW).id
                          for r, a in cancels])

    assert sorted(outcomes) == sorted(a for _, a in cancels)
    statuses = [_entry(entry.id).status for _, entry in line]
    assert statuses == ["offered"] * 4
    offers = db.session.scalars(select(SlotHold).where(SlotHold.slot_id == slot_id, SlotHold.status == "held")).all()
    assert len(offers) == 4 and len({o.waitlist_entry_id for o in offers}) == 4
    slot = db.session.get(Slot, slot_id)
    assert (slot.booked_count, slot.held_count) == (0, 4)
    assert_seats_add_up(slot_id)
    # Everyone accepting at once books the four held seats, once each.
    accepted = race(app, [lambda r=resident.id, e=entry.id: booking.accept_offer(resident_id=r, entry_id=e, now=NOW).id
                          for resident, entry in line])
    assert all(isinstance(a, int) for a in accepted)
    assert Counter(_booked(slot_id)) == Counter(resident.id for resident, _ in line)
    assert_seats_add_up(slot_id)


@pytest.mark.timeout(120)
def test_everything_at_once_never_books_or_holds_a_seat_twice(app, committed):
    """Cancellations, a sweep, waiters leaving and accepting, and newcomers holding and booking, all at one moment:
    no deadlock, no error but the rules' refusals, and the seats add up."""
    slot, taken = _full_day(capacity=4)
    line = _waiting(slot, 4)
    newcomers = [resident_with_patient()[0].id for _ in range(8)]
    slot_id = slot.id
    db.session.commit()
    soon = NOW + timedelta(seconds=10)

    def hold_and_confirm(resident_id):
        hold = booking.hold_slot(resident_id=resident_id, slot_id=slot_id, now=soon)
        return booking.confirm_hold(resident_id=resident_id, hold_id=hold.id, now=soon).id

    calls = [lambda a=a: booking.cancel_appointment(resident_id=a.booked_by_resident_id, appointment_id=a.id,
                                                    now=NOW).id for a in taken[:3]]
    calls += [lambda: holds.release_expired_holds(now=soon)]
    calls += [lambda r=resident.id, e=entry.id: booking.leave_waitlist(resident_id=r, entry_id=e, now=soon).id
              for resident, entry in line[:1]]
    calls += [lambda r=resident.id, e=entry.id: booking.accept_offer(resident_id=r, entry_id=e, now=soon).id
              for resident, entry in line[1:]]
    calls += [lambda r=r: hold_and_confirm(r) for r in newcomers[:4]]
    calls += [lambda r=r: booking.book_slot(resident_id=r, slot_id=slot_id, now=soon).id for r in newcomers[4:]]

    outcomes = race(app, calls)

    refusals = {o for o in outcomes if isinstance(o, str)}
    assert refusals <= {"slot_taken", "no_offer"}, refusals
    assert_seats_add_up(slot_id)
    booked = _booked(slot_id)
    assert len(booked) == len(set(booked)) <= 4
    live_offers = db.session.scalars(select(SlotHold.waitlist_entry_id).where(
        SlotHold.kind == "offer", SlotHold.status == "held")).all()
    assert len(live_offers) == len(set(live_offers))
    slot = db.session.get(Slot, slot_id)
    assert slot.booked_count + slot.held_count <= 4


# --- the routes ---------------------------------------------------------------------------------------------------

VISIT_DAY = datetime.now(SHANGHAI).date() + timedelta(days=3)  # routes take the clock's time


def test_the_app_joins_lists_accepts_and_leaves(client, app, session):
    tokens = sign_in(client, app, "13800000041")
    resident = db.session.get(Resident, tokens["resident_id"])
    PatientFactory(resident=resident, relation="self")
    ConversationFactory(resident=resident, channel="wechat")
    department = DepartmentFactory()
    slot = SlotFactory(doctor__department=department, department=department, day=VISIT_DAY, at=time(9, 0), capacity=1)
    holder, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=holder.id, slot_id=slot.id)
    db.session.commit()

    joined = client.post("/api/v1/waitlist", headers=idem(tokens),
                         json={"department_id": department.id, "date": VISIT_DAY.isoformat()})
    assert joined.status_code == 201, joined.get_data(as_text=True)
    entry = joined.get_json()["entry"]
    assert (entry["status"], entry["position"], entry["offer"], entry["date"]) == \
        ("waiting", 1, None, VISIT_DAY.isoformat())
    again = client.post("/api/v1/waitlist", headers=idem(tokens),
                        json={"department_id": department.id, "date": VISIT_DAY.isoformat()})
    assert error_code(again, 409) == "already_waiting"
    no_offer = client.post(f"/api/v1/waitlist/{entry['id']}/accept", headers=idem(tokens))
    assert error_code(no_offer, 409) == "no_offer"

    booking.cancel_appointment(resident_id=holder.id, appointment_id=appointment.id)
    db.session.commit()
    listed = client.get("/api/v1/waitlist", headers=bearer(tokens)).get_json()["entries"]
    assert [(e["id"], e["status"], e["offer"]["slot_id"], e["offer"]["kind"]) for e in listed] == \
        [(entry["id"], "offered", slot.id, "offer")]

    accepted = client.post(f"/api/v1/waitlist/{entry['id']}/accept", headers=idem(tokens))
    assert accepted.status_code == 201
    assert accepted.get_json()["appointment"]["slot_id"] == slot.id
    left = client.delete(f"/api/v1/waitlist/{entry['id']}", headers=idem(tokens))
    assert left.status_code == 200 and left.get_json()["entry"]["status"] == "booked"  # leaving keeps the booking
    assert error_code(client.delete("/api/v1/waitlist/999999", headers=idem(tokens)), 404) == "not_found"


def test_the_bot_joins_by_department_name_and_answers_offers(client, session):
    conversation = ConversationFactory(resident=ResidentFactory())
    PatientFactory(resident=conversation.resident, name="李大爷")
    department = DepartmentFactory(name="候补测试科")
    slot = SlotFactory(doctor__department=department, department=department, day=VISIT_DAY, at=time(9, 0), capacity=1)
    holder, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=holder.id, slot_id=slot.id)
    db.session.commit()
    sender = conversation.bot_sender

    joined = client.post("/api/internal/waitlist", headers=AUTH,
                         json={"sender": sender, "department": "候补测试科", "date": VISIT_DAY.isoformat()})
    assert joined.status_code == 201, joined.get_data(as_text=True)
    entry = joined.get_json()["entry"]
    assert set(entry) == {"id", "department", "date", "status", "position", "patient_name", "offer"}
    assert (entry["department"], entry["status"], entry["patient_name"]) == ("候补测试科", "waiting", "李大爷")
    db.session.commit()
    twice = client.post("/api/internal/waitlist", headers=AUTH,
                        json={"sender": sender, "department": str(department.id), "date": VISIT_DAY.isoformat()})
    assert error_code(twice, 409) == "already_waiting"

    booking.cancel_appointment(resident_id=holder.id, appointment_id=appointment.id)
    db.session.commit()
    listed, = client.get("/api/internal/waitlist", headers=AUTH, query_string={"sender": sender}
                         ).get_json()["entries"]
    assert listed["status"] == "offered" and listed["offer"]["slot_id"] == slot.id
    accepted = client.post(f"/api/internal/waitlist/{entry['id']}/accept", headers=AUTH, json={"sender": sender})
    assert accepted.status_code == 201 and accepted.get_json()["appointment"]["patient_name"] == "李大爷"
    left = client.post(f"/api/internal/waitlist/{entry['id']}/leave", headers=AUTH, json={"sender": sender})
    assert left.status_code == 200 and left.get_json()["entry"]["status"] == "booked"
