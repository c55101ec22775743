"""Signed presses from help buttons: forged and replayed requests refused, retries and second presses joined."""
from __future__ import annotations

import time

import requests
from sqlalchemy import func, select

from app.core.extensions import db
from app.models import HelpAlert, HelpPress
from app.services.help import devices as help_devices
from tests.helpers.help import make_chain, make_device
from tests.helpers.help_calls import call_requests, drain, press


def _setup(help_app):
    with help_app.app_context():
        elder, _ = make_chain(n=2, channels="voice")
        return make_device(elder.id)


def test_a_forged_signature_is_refused_with_401_and_nothing_is_raised(help_db, served, twilio_stub):
    help_app, base = served
    uid, secret = _setup(help_app)
    forged = press(base, uid, secret, "p-1", signature=help_devices.sign("not-the-secret", uid, "p-1", int(time.time())))
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_signature"
    unknown = press(base, "DEV-NOPE", secret, "p-1")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_signature"
    with help_app.app_context():
        assert db.session.scalar(select(func.count(HelpAlert.id))) == 0


def test_a_replayed_request_with_a_stale_timestamp_is_refused_with_403(help_db, served, twilio_stub):
    help_app, base = served
    uid, secret = _setup(help_app)
    stale = press(base, uid, secret, "p-1", timestamp=int(time.time()) - 301)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale_request"
    future = press(base, uid, secret, "p-2", timestamp=int(time.time()) + 400)
    assert future.status_code == 403
    assert press(base, uid, secret, "p-3", timestamp=int(time.time()) - 200).status_code == 201


def test_an_oversized_or_malformed_body_is_refused(help_db, served, twilio_stub):
    help_app, base = served
    uid, _ = _setup(help_app)
    big = requests.post(f"{base}/api/devices/{uid}/alerts", data="x" * 5000,
                        headers={"Content-Type": "application/json"}, timeout=10)
    assert big.status_code == 413 and "error" in big.json()
    bad = requests.post(f"{base}/api/devices/{uid}/alerts", json={"press_id": "p"}, timeout=10)
    assert bad.status_code == 422


def test_the_same_press_id_twice_is_the_same_alert_and_another_press_joins_it(help_db, served, twilio_stub):
    help_app, base = served
    uid, secret = _setup(help_app)
    first = press(base, uid, secret, "p-1").json()["alert"]["id"]
    retried = press(base, uid, secret, "p-1").json()["alert"]["id"]
    again = press(base, uid, secret, "p-2").json()["alert"]["id"]
    assert first == retried == again
    drain(help_app)
    assert len(call_requests(twilio_stub)) == 1  # one chain, one first call
    with help_app.app_context():
        assert db.session.scalar(select(func.count(HelpAlert.id))) == 1
        assert sorted(db.session.scalars(select(HelpPress.press_id)).all()) == ["p-1", "p-2"]


def test_chain_management_needs_the_service_token_and_keeps_order(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, _ = make_chain(n=1)
        elder_id = elder.id
    url = f"{base}/api/residents/{elder_id}/help-contacts"
    assert requests.get(url, timeout=10).status_code == 401
    auth = {"Authorization": "Bearer test-bot-token"}
    chain = [{"name": "女儿", "phone": "+8613800000021", "relation": "family"},
             {"name": "值班室", "phone": "+8613800000099", "relation": "staff", "channels": ["voice"]}]
    put = requests.put(url, json={"contacts": chain}, headers=auth, timeout=10)
    assert put.status_code == 200, put.text
    assert [c["name"] for c in put.json()["contacts"]] == ["女儿", "值班室"] and put.json()["complete"]
    swapped = list(reversed(put.json()["contacts"]))
    put = requests.put(url, json={"contacts": [{k: v for k, v in c.items() if k != "position"} for c in swapped]},
                       headers=auth, timeout=10)
    assert [c["name"] for c in put.json()["contacts"]] == ["值班室", "女儿"]
    bad = requests.put(url, json={"contacts": [{"name": "x", "phone": "12345", "relation": "family"}]},
                       headers=auth, timeout=10)
    assert bad.status_code == 422
    device = requests.post(f"{base}/api/devices", json={"device_uid": "DEV-NEW1", "resident_id": elder_id},
                           headers=auth, timeout=10)
    assert device.status_code == 201 and len(device.json()["secret"]) > 20
    assert press(base, "DEV-NEW1", device.json()["secret"], "first").status_code == 201
