"""The authorization sweep: every mobile endpoint refuses no token, an expired token and a revoked token,
and another resident's token never reaches a resident's data."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import pytest

from app.core.extensions import db
from app.core.photo_storage import LocalDiskStorage
from app.models import HelpAlert, HelpContact, Patient, RequestPhoto, ResidentRequest
from app.models.base import utcnow
from app.seed import demo_id_number
from app.services.booking import appointments as booking
from app.services.booking import holds, waitlist
from app.services.booking import patients as booking_patients
from app.services.booking.calendar import SHANGHAI
from app.services.help import chain_access as resident_help
from app.services.help import devices as help_devices
from app.services.outbox import messages as outbox
from app.services.residents import auth as resident_auth
from app.services.tickets import requests as resident_requests
from tests.factories import SlotFactory, StreetFactory
from tests.helpers.mobile import bearer, error_code, image_bytes, sign_in

PUBLIC = {"mobile_v1.send_code", "mobile_v1.sign_in", "mobile_v1.wechat_url", "mobile_v1.wechat_sign_in",
          "mobile_v1.refresh"}
MARK = "甲"  # every row of resident A carries it; nobody else's does


@pytest.fixture
def world(client, app, session, tmp_path, monkeypatch):
    """Resident A with one of everything, resident B, and A's expired and revoked tokens."""
    monkeypatch.setitem(app.extensions, "linli_photo_storage", LocalDiskStorage(str(tmp_path)))
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    StreetFactory()
    day = datetime.now(SHANGHAI).date() + timedelta(days=3)
    first = SlotFactory(day=day, at=time(9, 0))
    full = SlotFactory(day=day + timedelta(days=1), at=time(9, 0), doctor=first.doctor, capacity=1)
    slots = [first.id, SlotFactory(day=day, at=time(10, 0), doctor=first.doctor).id]
    full_id, full_department, full_day = full.id, full.department_id, full.local_date
    a = sign_in(client, app, "13800000041")
    revoked = sign_in(client, app, "13800000041")
    client.post("/api/v1/auth/sign-out", headers=bearer(revoked))
    b = sign_in(client, app, "13800000042")
    aid = a["resident_id"]
    patient = booking_patients.add_patient(resident_id=aid, name=f"{MARK}本人",
                                           id_number=demo_id_number("19500101", "111"))
    relative = booking_patients.add_patient(resident_id=aid, name=f"{MARK}母亲", relation="parent",
                                            id_number=demo_id_number("19300101", "222"))
    appointment = booking.book_slot(resident_id=aid, slot_id=slots[0], patient_id=patient.id)
    # A held seat, and a place on a full day's waitlist (issue 23's rows).
    seat = holds.hold_slot(resident_id=aid, slot_id=slots[1], patient_id=relative.id)
    booking.book_slot(resident_id=aid, slot_id=full_id, patient_id=patient.id)
    place = waitlist.join_waitlist(resident_id=aid, department_id=full_department, day=full_day,
                                   patient_id=relative.id)
    help_devices.replace_chain(resident_id=aid, contacts=[{"name": f"{MARK}儿子", "phone": "+8613900000041",
                                                          "relation": "family"}])
    delegate = resident_help.add_delegate(resident_id=aid, phone="13900000099", name=f"{MARK}家属")
    photo = resident_requests.upload_photo(resident_id=aid, data=image_bytes())
    spare = resident_requests.upload_photo(resident_id=aid, data=image_bytes())
    filed = resident_requests.report(resident_id=aid, category="other", text=f"{MARK}的诉求", pole_number="GY0001",
                                     photo_ids=[photo.id])
    outbox.stage_message(conversation_id=outbox.conversation_for(resident_id=aid, channel="sms").id,
                         body=f"{MARK}的通知", kind="notice")
    db.session.add(HelpAlert(resident_id=aid, source="device", status="resolved", created_at=utcnow()))
    db.session.commit()
    expired = resident_auth.open_session(resident_id=aid, method="sms", now=utcnow() - timedelta(hours=1))
    return {
        "a": a, "b": b, "revoked": revoked, "expired": expired.access_token, "aid": aid, "pid": relative.id,
        "apt": appointment.id, "slot2": slots[1], "did": delegate.id, "photo": photo.id, "spare": spare.id,
        "rid": filed.id, "hold": seat.id, "place": place.id,
    }


def _routes(w: dict) -> list[tuple[str, str, dict | None, bool]]:
    """(method, path, json, names one of A's rows) for every protected endpoint."""
    a, chain = w["aid"], {"contacts": [{"name": "乙", "phone": "+8613900000042", "relation": "family"}]}
    return [
        ("GET", "/api/v1/me", None, False),
        ("PATCH", "/api/v1/me", {"name": "改名"}, False),
        ("POST", "/api/v1/me/channels/wechat", {"code": "c", "state": "s"}, False),
        ("POST", "/api/v1/me/channels/phone", {"phone": "13600000041"}, False),
        ("POST", "/api/v1/me/channels/phone/confirm", {"code": "123456"}, False),
        ("GET", "/api/v1/family", None, False),
        ("POST", "/api/v1/family", {"name": "乙", "id_number": demo_id_number("19600101", "333")}, False),
        ("PATCH", f"/api/v1/family/{w['pid']}", {"name": "改名"}, True),
        ("DELETE", f"/api/v1/family/{w['pid']}", None, True),
        ("GET", "/api/v1/departments", None, False),
        ("GET", "/api/v1/slots?department=1&date_from=2030-01-01", None, False),
        ("GET", "/api/v1/appointments", None, False),
        ("GET", f"/api/v1/appointments/{w['apt']}", None, True),
        ("POST", "/api/v1/appointments", {"slot_id": w["slot2"]}, False),
        ("POST", f"/api/v1/appointments/{w['apt']}/cancel", None, True),
        ("POST", f"/api/v1/appointments/{w['apt']}/reschedule", {"slot_id": w["slot2"]}, True),
        ("POST", "/api/v1/holds", {"slot_id": w["slot2"]}, False),
        ("POST", f"/api/v1/holds/{w['hold']}/confirm", None, True),
        ("DELETE", f"/api/v1/holds/{w['hold']}", None, True),
        ("GET", "/api/v1/waitlist", None, False),
        ("POST", "/api/v1/waitlist", {"department_id": 1, "date": "2030-01-01"}, False),
        ("POST", f"/api/v1/waitlist/{w['place']}/accept", None, True),
        ("DELETE", f"/api/v1/waitlist/{w['place']}", None, True),
        ("GET", "/api/v1/help/residents", None, False),
        ("GET", f"/api/v1/help/residents/{a}/contacts", None, True),
        ("PUT", f"/api/v1/help/residents/{a}/contacts", chain, True),
        ("GET", f"/api/v1/help/residents/{a}/alerts", None, True),
        ("GET", "/api/v1/help/delegates", None, False),
        ("POST", "/api/v1/help/delegates", {"phone": "13600000042"}, False),
        ("DELETE", f"/api/v1/help/delegates/{w['did']}", None, True),
        ("POST", "/api/v1/photos", None, False),
        ("GET", f"/api/v1/photos/{w['photo']}", None, True),
        ("POST", "/api/v1/requests", {"category": "other", "text": "乙", "pole_number": "GY0002",
                                      "photo_ids": [w["spare"]]}, True),
        ("GET", "/api/v1/requests", None, False),
        ("GET", f"/api/v1/requests/{w['rid']}", None, True),
        ("POST", f"/api/v1/requests/{w['rid']}/rating", {"score": 5}, True),
        ("POST", f"/api/v1/requests/{w['rid']}/followup", {"solved": True}, True),
        ("GET", "/api/v1/notifications", None, False),
        ("POST", "/api/v1/auth/sign-out", None, False),
        ("POST", "/api/v1/auth/sign-out-everywhere", None, False),
    ]


def _call(client, method, path, body, headers):
    return client.open(path, method=method, json=body, headers=headers)


def test_every_endpoint_is_in_the_sweep(app, world):
    swept = set()
    with app.test_request_context():
        adapter = app.url_map.bind("linli.test")
        for method, path, _, _ in _routes(world):
            endpoint, _ = adapter.match(path.split("?")[0], method=method)
            swept.add(endpoint)
    mobile = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("mobile_v1.")}
    assert mobile - PUBLIC - swept == set(), "add the new endpoint to the sweep"


@pytest.mark.parametrize("credential, code", [(None, "missing_token"), ("expired", "token_expired"),
                                              ("revoked", "token_revoked"), ("garbage", "invalid_token")])
def test_no_expired_revoked_or_forged_token_reaches_any_endpoint(client, world, credential, code):
    token = {"expired": world["expired"], "revoked": world["revoked"]["access_token"],
             "garbage": "not.a.jwt"}.get(credential)
    headers = bearer(token) if token else {}
    for method, path, body, _ in _routes(world):
        response = _call(client, method, path, body, headers)
        assert error_code(response, 401) == code, f"{method} {path}"
    assert _a_is_untouched(world)


def test_another_residents_token_never_reaches_a_residents_rows(client, world):
    for method, path, body, names_a_row in _routes(world):
        if path.startswith("/api/v1/auth/"):
            continue  # they act on the caller's own sessions only (covered in test_mobile_auth)
        response = _call(client, method, path, body, bearer(world["b"]))
        if names_a_row:
            assert response.status_code == 404, f"{method} {path}: {response.status_code}"
            assert MARK not in _text(response)
        else:
            assert MARK not in _text(response), f"{method} {path} leaked A's data"
    assert _a_is_untouched(world)
    # A still sees all of it.
    assert MARK in _text(client.get(f"/api/v1/requests/{world['rid']}", headers=bearer(world["a"])))


def _text(response) -> str:
    # JSON escapes Chinese (\u7532): compare against the decoded body, or a leak would go unseen.
    return json.dumps(response.get_json(), ensure_ascii=False) if response.is_json else response.get_data(as_text=True)


def _a_is_untouched(w: dict) -> bool:
    db.session.expire_all()
    return (db.session.get(Patient, w["pid"]).removed_at is None
            and booking.get_appointment(resident_id=w["aid"], appointment_id=w["apt"]).status == "booked"
            and [c.name for c in db.session.query(HelpContact).filter_by(resident_id=w["aid"])] == [f"{MARK}儿子"]
            and db.session.get(RequestPhoto, w["spare"]).request_id is None
            and db.session.get(ResidentRequest, w["rid"]).ticket.csat_score is None
            and len(resident_help.delegates(resident_id=w["aid"])) == 1)


def test_the_openapi_document_describes_every_mobile_endpoint_and_its_bearer_security(client, app):
    spec = client.get("/openapi.json").get_json()
    operations = {(method.upper(), path): op for path, item in spec["paths"].items() if path.startswith("/api/v1/")
                  for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")}
    assert len(operations) == len([r for r in app.url_map.iter_rules() if r.endpoint.startswith("mobile_v1.")])
    public = {("POST", "/api/v1/auth/sms-code"), ("POST", "/api/v1/auth/sign-in"), ("POST", "/api/v1/auth/refresh"),
              ("GET", "/api/v1/auth/wechat/authorize-url"), ("POST", "/api/v1/auth/wechat")}
    for key, op in operations.items():
        assert bool(op.get("security")) == (key not in public), key
        if op.get("security") and key[0] != "GET" and not key[1].startswith("/api/v1/auth/"):
            assert any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])), key
