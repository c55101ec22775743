"""Family members and appointments from the app: booking's services behind the resident's token,
ID numbers masked, and a retried booking (same Idempotency-Key) booking once."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from app.core.extensions import db
from app.models import Appointment, IdempotencyRecord, Slot
from app.seed import demo_id_number
from app.services.booking.calendar import SHANGHAI
from tests.factories import SlotFactory
from tests.helpers.mobile import bearer, error_code, idem, sign_in

VISIT_DAY = datetime.now(SHANGHAI).date() + timedelta(days=3)
ID_SELF = demo_id_number("19580704", "123")
ID_MOTHER = demo_id_number("19400101", "246")


@pytest.fixture
def resident(client, app, session):
    tokens = sign_in(client, app, "13800000001")
    response = client.post("/api/v1/family", headers=idem(tokens), json={"name": "王建国", "id_number": ID_SELF})
    assert response.status_code == 201, response.get_data(as_text=True)
    return tokens


@pytest.fixture
def slots(session):
    made = [SlotFactory(day=VISIT_DAY, at=time(9, 0), capacity=2)]
    made.append(SlotFactory(day=VISIT_DAY, at=time(10, 0), capacity=2, doctor=made[0].doctor))
    ids = [s.id for s in made]
    session.commit()
    return ids


def test_family_members_are_added_edited_removed_and_their_id_numbers_always_masked(client, resident):
    added = client.post("/api/v1/family", headers=idem(resident),
                        json={"name": "王母", "id_number": ID_MOTHER, "relation": "parent"})
    assert added.status_code == 201
    member = added.get_json()["patient"]
    assert member["id_number_masked"] == "*" * 14 + ID_MOTHER[-4:]
    edited = client.patch(f"/api/v1/family/{member['id']}", headers=idem(resident), json={"name": "王老太"})
    assert edited.get_json()["patient"]["name"] == "王老太"
    listing = client.get("/api/v1/family", headers=bearer(resident))
    assert ID_MOTHER not in listing.get_data(as_text=True) and ID_SELF not in listing.get_data(as_text=True)
    assert [p["relation"] for p in listing.get_json()["patients"]] == ["self", "parent"]
    assert client.delete(f"/api/v1/family/{member['id']}", headers=idem(resident)).status_code == 204
    assert len(client.get("/api/v1/family", headers=bearer(resident)).get_json()["patients"]) == 1


def test_an_invalid_id_number_is_refused(client, resident):
    response = client.post("/api/v1/family", headers=idem(resident), json={"name": "x", "id_number": "123"})
    assert error_code(response, 422) == "invalid_id_number"


def test_search_book_reschedule_cancel_and_list(client, resident, slots):
    department = client.get("/api/v1/departments", headers=bearer(resident)).get_json()["departments"][0]["id"]
    found = client.get("/api/v1/slots", headers=bearer(resident), query_string={
        "department": department, "date_from": VISIT_DAY.isoformat()}).get_json()["slots"]
    assert [s["id"] for s in found] == slots
    booked = client.post("/api/v1/appointments", headers=idem(resident), json={"slot_id": slots[0]})
    assert booked.status_code == 201, booked.get_data(as_text=True)
    appointment = booked.get_json()["appointment"]
    assert appointment["patient"]["id_number_masked"].endswith(ID_SELF[-4:])
    moved = client.post(f"/api/v1/appointments/{appointment['id']}/reschedule", headers=idem(resident),
                        json={"slot_id": slots[1]}).get_json()["appointment"]
    assert moved["slot_id"] == slots[1]
    listed = client.get("/api/v1/appointments", headers=bearer(resident), query_string={"active": True}).get_json()
    assert [a["id"] for a in listed["appointments"]] == [moved["id"]] and listed["next_cursor"] is None
    cancelled = client.post(f"/api/v1/appointments/{moved['id']}/cancel", headers=idem(resident))
    assert cancelled.get_json()["appointment"]["status"] == "cancelled"
    assert client.get(f"/api/v1/appointments/{moved['id']}", headers=bearer(resident)).status_code == 200


def test_a_retried_booking_with_the_same_key_books_once_and_replays_the_answer(client, resident, slots):
    headers = idem(resident, key="book-once-7f3a")
    first = client.post("/api/v1/appointments", headers=headers, json={"slot_id": slots[0]})
    retry = client.post("/api/v1/appointments", headers=headers, json={"slot_id": slots[0]})
    assert first.status_code == retry.status_code == 201
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    assert db.session.get(Slot, slots[0]).booked_count == 1
    assert db.session.query(Appointment).count() == 1
    # The key with another body is a client bug, not a retry.
    other = client.post("/api/v1/appointments", headers=headers, json={"slot_id": slots[1]})
    assert error_code(other, 422) == "idempotency_key_reused"


def test_a_refused_write_keeps_no_key_so_its_retry_runs_again(client, resident, slots):
    headers = idem(resident, key="retry-after-refusal")
    refused = client.post("/api/v1/appointments", headers=headers, json={"slot_id": 999999})
    assert error_code(refused, 404) == "not_found"
    assert db.session.query(IdempotencyRecord).filter_by(key="retry-after-refusal").count() == 0
    assert client.post("/api/v1/appointments", headers=headers, json={"slot_id": slots[0]}).status_code == 201


def test_keys_are_scoped_per_resident(client, app, resident, slots):
    other = sign_in(client, app, "13800000002")
    client.post("/api/v1/family", headers=idem(other), json={"name": "李四", "id_number": ID_MOTHER})
    shared_key = "same-key-two-residents"
    mine = client.post("/api/v1/appointments", headers=idem(resident, shared_key), json={"slot_id": slots[0]})
    theirs = client.post("/api/v1/appointments", headers=idem(other, shared_key), json={"slot_id": slots[0]})
    assert mine.status_code == theirs.status_code == 201
    assert mine.get_json()["appointment"]["id"] != theirs.get_json()["appointment"]["id"]


def test_booking_rules_answer_with_their_own_codes(client, resident, slots):
    client.post("/api/v1/appointments", headers=idem(resident), json={"slot_id": slots[0]})
    again = client.post("/api/v1/appointments", headers=idem(resident), json={"slot_id": slots[1]})
    assert error_code(again, 409) == "daily_limit"


def test_a_duplicate_arriving_while_the_first_is_still_running_is_refused_not_run(session, resident):
    from app.core import idempotency
    from app.core.errors import Conflict

    digest = idempotency.fingerprint("POST", "/api/v1/appointments", '{"slot_id":1}')
    reserved = idempotency.reserve(resident_id=resident["resident_id"], key="in-flight", fingerprint=digest)
    assert isinstance(reserved, int)
    with pytest.raises(Conflict) as caught:
        idempotency.reserve(resident_id=resident["resident_id"], key="in-flight", fingerprint=digest)
    assert caught.value.code == "idempotency_key_in_use"
