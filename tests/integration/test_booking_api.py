"""The booking HTTP APIs: the bot's contract shapes, the resident/staff API, and 4xx JSON errors."""
from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

import pytest

from app.core.extensions import db
from app.seed import demo_id_number
from app.services.booking.calendar import SHANGHAI
from tests.factories import ConversationFactory, DepartmentFactory, PatientFactory, ResidentFactory, SlotFactory

AUTH = {"Authorization": "Bearer test-bot-token"}
# Real time here (routes take the clock's time): three days ahead is released and cancellable.
VISIT_DAY = datetime.now(SHANGHAI).date() + timedelta(days=3)
VALID_ID = demo_id_number("19580704", "123")


@pytest.fixture
def sender(session):
    conversation = ConversationFactory(resident=ResidentFactory())
    PatientFactory(resident=conversation.resident, name="张阿姨")
    session.commit()
    return conversation.bot_sender


@pytest.fixture
def slot(session):
    slot = SlotFactory(day=VISIT_DAY, at=time(9, 0), capacity=2)
    session.commit()
    return slot


def _error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["message"]
    return error["code"]


def _book(client, sender, slot_id):
    db.session.commit()  # a refused request rolls back its session, which here also holds the test's data
    return client.post("/api/internal/appointments", json={"sender": sender, "slot_id": slot_id}, headers=AUTH)


# --- the bot's contract -----------------------------------------------------------------------

def test_departments_list_their_hospital(client, slot):
    body = client.get("/api/internal/departments", headers=AUTH).get_json()
    entry = next(d for d in body["departments"] if d["id"] == slot.department_id)
    assert entry == {"id": slot.department_id, "name": slot.department.name, "hospital": slot.department.hospital.name}


def test_slots_have_the_contract_shape_in_shanghai_time(client, sender, slot):
    response = client.get("/api/internal/slots", headers=AUTH, query_string={
        "sender": sender, "department": slot.department.name, "date": VISIT_DAY.isoformat()})
    assert response.status_code == 200
    found, = response.get_json()["slots"]
    assert set(found) == {"id", "department", "doctor", "doctor_title", "start", "end", "free"}
    assert found["start"] == f"{VISIT_DAY.isoformat()}T09:00:00+08:00"
    assert found["end"] == f"{VISIT_DAY.isoformat()}T09:30:00+08:00"
    assert (found["id"], found["free"], found["doctor_title"]) == (slot.id, 2, "普通")


def test_slots_respect_limit_and_session(client, sender):
    department = DepartmentFactory()
    for hour in (8, 9, 10):
        SlotFactory(doctor__department=department, department=department, day=VISIT_DAY, at=time(hour, 0))
    query = {"sender": sender, "department": str(department.id), "date": VISIT_DAY.isoformat()}
    assert len(client.get("/api/internal/slots", headers=AUTH, query_string={**query, "limit": 2})
               .get_json()["slots"]) == 2
    assert client.get("/api/internal/slots", headers=AUTH, query_string={**query, "session": "afternoon"}
                      ).get_json()["slots"] == []


def test_book_list_and_cancel_through_the_bot_api(client, sender, slot):
    response = _book(client, sender, slot.id)
    assert response.status_code == 201
    appointment = response.get_json()["appointment"]
    assert set(appointment) == {"id", "slot_id", "department", "doctor", "start", "status", "patient_name"}
    assert (appointment["slot_id"], appointment["status"], appointment["patient_name"]) == (slot.id, "booked", "张阿姨")
    assert appointment["start"].endswith("+08:00")

    listed = client.get("/api/internal/appointments", headers=AUTH, query_string={"sender": sender}).get_json()
    assert [a["id"] for a in listed["appointments"]] == [appointment["id"]]

    cancelled = client.post(f"/api/internal/appointments/{appointment['id']}/cancel", json={"sender": sender},
                            headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.get_json()["appointment"]["status"] == "cancelled"
    assert client.get("/api/internal/appointments", headers=AUTH, query_string={"sender": sender}
                      ).get_json()["appointments"] == []


def test_reschedule_through_the_bot_api(client, sender, slot):
    later = SlotFactory(doctor=slot.doctor, department=slot.department, day=VISIT_DAY, at=time(10, 0))
    appointment = _book(client, sender, slot.id).get_json()["appointment"]
    moved = client.post(f"/api/internal/appointments/{appointment['id']}/reschedule",
                        json={"sender": sender, "slot_id": later.id}, headers=AUTH)
    assert moved.status_code == 200 and moved.get_json()["appointment"]["slot_id"] == later.id


def test_rule_refusals_are_409_with_their_code(client, sender, slot):
    assert _book(client, sender, slot.id).status_code == 201
    assert _error(_book(client, sender, slot.id), 409) == "daily_limit"
    other = ConversationFactory(resident=PatientFactory().resident).bot_sender
    assert _book(client, other, slot.id).status_code == 201
    third = ConversationFactory(resident=PatientFactory().resident).bot_sender
    assert _error(_book(client, third, slot.id), 409) == "slot_taken"
    unreleased = SlotFactory(day=VISIT_DAY + timedelta(days=30))
    assert _error(_book(client, third, unreleased.id), 409) == "slot_not_released"


def test_a_resident_without_a_patient_record_gets_422_no_patient(client, slot):
    bare = ConversationFactory(resident=ResidentFactory()).bot_sender
    assert _error(_book(client, bare, slot.id), 422) == "no_patient"


@pytest.mark.parametrize("call", [
    lambda c: c.post("/api/internal/appointments", json={"sender": "x", "slot_id": "abc"}, headers=AUTH),
    lambda c: c.post("/api/internal/appointments", json={"slot_id": 1}, headers=AUTH),
    lambda c: c.get("/api/internal/slots", headers=AUTH, query_string={"sender": "x", "department": "内科",
                                                                        "date": "12/03/2031"}),
    lambda c: c.get("/api/internal/slots", headers=AUTH, query_string={"sender": "x", "department": "内科",
                                                                        "date": "2031-03-12", "session": "night"}),
    lambda c: c.get("/api/booking/slots", headers=AUTH, query_string={"department": "1", "date_from": "x"}),
    lambda c: c.post("/api/booking/residents/1/patients", json={"name": ""}, headers=AUTH),
])
def test_malformed_input_is_a_422_validation_error(client, call):
    assert _error(call(client), 422) == "validation_error"


def test_unknowns_are_404s_with_codes(client, sender):
    assert _error(_book(client, "nobody", 1), 404) == "unknown_sender"
    assert _error(_book(client, sender, 987654), 404) == "not_found"
    assert _error(client.get("/api/internal/slots", headers=AUTH, query_string={
        "sender": sender, "department": "没有这个科", "date": VISIT_DAY.isoformat()}), 404) == "not_found"
    assert _error(client.post("/api/internal/appointments/987654/cancel", json={"sender": sender}, headers=AUTH),
                  404) == "not_found"


def test_the_booking_apis_need_the_service_token(client):
    assert _error(client.get("/api/booking/departments"), 401) == "invalid_service_token"
    assert _error(client.get("/api/internal/departments", headers={"Authorization": "Bearer no"}),
                  401) == "invalid_service_token"


# --- the resident / staff API -----------------------------------------------------------------

def test_family_members_are_added_edited_listed_and_removed_with_masked_ids(client, caplog):
    resident = ResidentFactory()
    base = f"/api/booking/residents/{resident.id}/patients"
    caplog.set_level(logging.DEBUG)
    created = client.post(base, json={"name": "王大爷", "id_number": VALID_ID.lower(), "relation": "parent"},
                          headers=AUTH)
    assert created.status_code == 201, created.get_data(as_text=True)
    patient = created.get_json()["patient"]
    assert patient["id_number_masked"] == "*" * 14 + VALID_ID[-4:]
    assert "id_number" not in patient

    edited = client.patch(f"{base}/{patient['id']}", json={"name": "王老伯", "phone": "+8613800000000"}, headers=AUTH)
    assert edited.get_json()["patient"]["name"] == "王老伯"
    listed = client.get(base, headers=AUTH)
    assert [p["id"] for p in listed.get_json()["patients"]] == [patient["id"]]
    assert _error(client.post(base, json={"name": "又一个", "id_number": VALID_ID, "relation": "other"},
                              headers=AUTH), 409) == "patient_exists"

    assert client.delete(f"{base}/{patient['id']}", headers=AUTH).status_code == 204
    assert client.get(base, headers=AUTH).get_json()["patients"] == []
    for text in (created.get_data(as_text=True), edited.get_data(as_text=True), listed.get_data(as_text=True),
                 caplog.text):
        assert VALID_ID not in text and VALID_ID[:-4] not in text


def test_an_id_number_with_a_wrong_checksum_is_invalid_id_number(client, caplog):
    resident = ResidentFactory()
    wrong = VALID_ID[:-1] + ("0" if VALID_ID[-1] != "0" else "1")
    caplog.set_level(logging.DEBUG)
    response = client.post(f"/api/booking/residents/{resident.id}/patients",
                           json={"name": "李四", "id_number": wrong}, headers=AUTH)
    assert _error(response, 422) == "invalid_id_number"
    assert wrong not in response.get_data(as_text=True) and wrong not in caplog.text


def test_booking_api_books_for_a_family_member_and_shows_the_masked_id(client, slot):
    resident = ResidentFactory()
    mother = PatientFactory(resident=resident, relation="parent", id_number=VALID_ID)
    response = client.post(f"/api/booking/residents/{resident.id}/appointments",
                           json={"slot_id": slot.id, "patient_id": mother.id}, headers=AUTH)
    assert response.status_code == 201, response.get_data(as_text=True)
    appointment = response.get_json()["appointment"]
    masked = "*" * 14 + VALID_ID[-4:]
    assert appointment["patient"] == {"id": mother.id, "name": mother.name, "id_number_masked": masked}
    assert appointment["seat_no"] == 1 and appointment["start"].endswith("+08:00")
    assert VALID_ID not in response.get_data(as_text=True)

    listed = client.get(f"/api/booking/residents/{resident.id}/appointments", headers=AUTH,
                        query_string={"active": "true"})
    assert [a["id"] for a in listed.get_json()["appointments"]] == [appointment["id"]]
    assert _error(client.post(f"/api/booking/appointments/{appointment['id']}/noshow", headers=AUTH),
                  409) == "too_early"


def test_booking_api_searches_a_date_range(client, slot):
    later = SlotFactory(doctor=slot.doctor, department=slot.department, day=VISIT_DAY + timedelta(days=1))
    response = client.get("/api/booking/slots", headers=AUTH, query_string={
        "department": str(slot.department_id), "date_from": VISIT_DAY.isoformat(),
        "date_to": (VISIT_DAY + timedelta(days=1)).isoformat(), "doctor_id": slot.doctor_id})
    assert [s["id"] for s in response.get_json()["slots"]] == [slot.id, later.id]
    assert response.get_json()["slots"][0]["hospital"] == slot.department.hospital.name


def test_every_booking_route_is_in_the_openapi_document(app, client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/api/internal/slots", "/api/internal/appointments", "/api/internal/departments",
                 "/api/internal/appointments/{appointment_id}/cancel", "/api/booking/slots",
                 "/api/booking/residents/{resident_id}/patients",
                 "/api/booking/residents/{resident_id}/appointments/{appointment_id}/reschedule",
                 "/api/booking/appointments/{appointment_id}/noshow"):
        assert path in paths, path


def test_the_old_booking_api_says_it_is_deprecated_and_names_its_successor(client, slot):
    """/api/booking predates /api/v1: every answer, refusals included, and the OpenAPI document say so."""
    answered = client.get("/api/booking/departments", headers=AUTH)
    refused = client.get("/api/booking/departments")  # no service token
    assert answered.status_code == 200 and refused.status_code == 401
    for response in (answered, refused):
        assert response.headers["Deprecation"] == "true"
        assert response.headers["Link"] == '</api/v1>; rel="successor-version"'
    assert "Deprecation" not in client.get("/api/internal/departments", headers=AUTH).headers
    paths = client.get("/openapi.json").get_json()["paths"]
    assert all(op.get("deprecated") for path, ops in paths.items() if path.startswith("/api/booking/")
               for op in ops.values())
    assert not any(op.get("deprecated") for op in paths["/api/internal/slots"].values())
