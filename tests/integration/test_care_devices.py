"""Help buttons' heartbeats: signed like presses, replays and strangers refused with nothing recorded; a device
silent past its interval or low on battery opens one outage (a ticket and the contacts told), once per outage."""
from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import func, select, update

from app.core.extensions import db
from app.models import DeviceHealth, HelpDevice, Ticket
from app.models.base import utcnow
from app.services import care
from app.services.care import device_watch
from tests.factories import StaffFactory
from tests.helpers.care import heartbeat, sms_to
from tests.helpers.help import make_chain, make_device
from tests.integration.test_help_board import _login


def _setup(help_app):
    with help_app.app_context():
        elder, contacts = make_chain(n=2, channels="voice")
        uid, secret = make_device(elder.id)
        return elder.id, [c.phone for c in contacts], uid, secret


def _health_rows(help_app) -> list[tuple]:
    with help_app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(DeviceHealth.device_id, DeviceHealth.last_device_ts, DeviceHealth.battery,
                   DeviceHealth.last_heartbeat_at)).all()]


def test_a_signed_heartbeat_is_stored_and_a_replay_forgery_or_stranger_is_refused_with_nothing_recorded(
        help_db, served, twilio_stub):
    help_app, base = served
    _, _, uid, secret = _setup(help_app)
    now = int(time.time())

    assert heartbeat(base, uid, secret, battery=80, timestamp=now, signature="0" * 64).status_code == 401
    unknown = heartbeat(base, "DEV-NOPE", secret, timestamp=now)
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_signature"
    stale = heartbeat(base, uid, secret, timestamp=now - 301)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale_request"
    assert _health_rows(help_app) == []  # nothing recorded for any of them

    first = heartbeat(base, uid, secret, battery=80, timestamp=now - 10)
    assert first.status_code == 201, first.text
    assert first.json()["battery"] == 80
    stored = _health_rows(help_app)
    replay = heartbeat(base, uid, secret, battery=80, timestamp=now - 10)
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "replayed_heartbeat"
    older = heartbeat(base, uid, secret, battery=10, timestamp=now - 20)  # an older capture, replayed later
    assert older.status_code == 409
    assert _health_rows(help_app) == stored  # the replays changed nothing
    # A captured heartbeat signature is no press signature: the press route refuses it.
    from tests.helpers.help_calls import press
    sig = care.sign_heartbeat(secret, uid, 80, None, now - 10)
    assert press(base, uid, secret, "80", timestamp=now - 10, signature=sig).status_code == 401

    assert heartbeat(base, uid, secret, battery=75, timestamp=now).status_code == 201
    assert _health_rows(help_app)[0][1:3] == (now, 75)


def _go_silent(help_app, uid: str, seconds: int) -> None:
    with help_app.app_context():
        device_id = db.session.scalar(select(HelpDevice.id).where(HelpDevice.device_uid == uid))
        db.session.execute(update(DeviceHealth).where(DeviceHealth.device_id == device_id).values(
            last_heartbeat_at=utcnow() - timedelta(seconds=seconds),
            watched_since=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def _outage_tickets(help_app) -> list[Ticket]:
    with help_app.app_context():
        return db.session.scalars(select(Ticket).where(Ticket.category == "device_offline")).all()


def test_a_silent_device_opens_one_outage_with_a_ticket_and_contact_notices_and_a_heartbeat_ends_it(
        help_db, served, twilio_stub):
    help_app, base = served
    elder_id, phones, uid, secret = _setup(help_app)
    assert heartbeat(base, uid, secret, battery=90, interval_seconds=600).status_code == 201
    with help_app.app_context():
        assert care.sweep_devices() == {"opened": 0, "linked": 0, "retold": 0}  # it just spoke
    _go_silent(help_app, uid, 600 + 30)  # past its interval, within the grace
    with help_app.app_context():
        assert care.sweep_devices()["opened"] == 0
    _go_silent(help_app, uid, 600 + 120)
    with help_app.app_context():
        # Two sweepers that both saw it silent: the compare-and-set lets one open the outage.
        device_id = db.session.scalar(select(HelpDevice.id))
        assert device_watch.start_outage(device_id=device_id, reason="silent", now=utcnow())
        assert not device_watch.start_outage(device_id=device_id, reason="silent", now=utcnow())
        assert care.sweep_devices()["opened"] == 0  # once per outage
    tickets = _outage_tickets(help_app)
    assert len(tickets) == 1 and tickets[0].resident_id == elder_id and tickets[0].status == "open"
    assert "长时间没有信号" in tickets[0].subject
    told = sms_to(twilio_stub)
    assert [to for to, _ in told] == phones[:1]  # the family contact; the staff group has the ticket
    assert "求助按钮长时间没有信号" in told[0][1]

    # It is back (a later timestamp than its last heartbeat, which may be this same second).
    assert heartbeat(base, uid, secret, battery=90, timestamp=int(time.time()) + 1).status_code == 201
    with help_app.app_context():
        health = db.session.scalar(select(DeviceHealth))
        assert health.outage_started_at is None and health.outages == 1
    _go_silent(help_app, uid, 600 + 120)  # and silent again: a new outage
    with help_app.app_context():
        assert care.sweep_devices()["opened"] == 1
    assert len(_outage_tickets(help_app)) == 2


class _Died(BaseException):
    """The process dying right after the outage's commit (not an Exception: nothing on the way may catch it)."""


def test_an_outage_whose_process_died_before_telling_the_contacts_is_told_by_the_next_sweep_once(
        help_db, served, twilio_stub, monkeypatch):
    help_app, base = served
    _, phones, uid, secret = _setup(help_app)
    assert heartbeat(base, uid, secret, battery=90, interval_seconds=600).status_code == 201
    _go_silent(help_app, uid, 600 + 120)

    def die(**_):
        raise _Died

    with help_app.app_context():
        with monkeypatch.context() as patched:
            patched.setattr(device_watch, "tell_contacts", die)
            try:
                care.sweep_devices()
            except _Died:
                pass
        db.session.rollback()
        health = db.session.scalar(select(DeviceHealth))
        assert health.outage_started_at is not None and health.outage_notified_at is None  # committed, untold
        assert sms_to(twilio_stub) == []
        assert care.sweep_devices()["retold"] == 0  # the opener may still be telling them: not yet
        later = utcnow() + timedelta(seconds=90)
        assert care.sweep_devices(now=later)["retold"] == 1
        assert care.sweep_devices(now=later + timedelta(seconds=60))["retold"] == 0  # once
        assert db.session.scalar(select(DeviceHealth.outage_notified_at)) is not None
    told = sms_to(twilio_stub)
    assert [to for to, _ in told] == phones[:1] and "求助按钮长时间没有信号" in told[0][1]
    assert len(_outage_tickets(help_app)) == 1


def test_a_device_never_heard_from_and_a_low_battery_each_open_an_outage(help_db, served, twilio_stub):
    help_app, base = served
    _, _, uid, secret = _setup(help_app)
    with help_app.app_context():
        elder, _ = make_chain(n=1, channels="voice")
        quiet_uid, _ = make_device(elder.id, device_uid="DEV-QUIET")
        help_app.config["DEVICE_HEARTBEAT_SECONDS"] = 600
        assert care.sweep_devices()["opened"] == 0  # both registered just now
    _go_silent(help_app, quiet_uid, 3600)  # registered an hour ago, never a heartbeat
    assert heartbeat(base, uid, secret, battery=12).status_code == 201
    with help_app.app_context():
        assert care.sweep_devices()["opened"] == 2
        reasons = dict(db.session.execute(select(HelpDevice.device_uid, DeviceHealth.outage_reason)
                                          .join(DeviceHealth, DeviceHealth.device_id == HelpDevice.id)).all())
    assert reasons == {uid: "battery", quiet_uid: "silent"}
    with help_app.app_context():
        assert db.session.scalar(select(func.count(Ticket.id)).where(Ticket.category == "device_offline")) == 2


def test_the_help_board_shows_each_devices_last_heartbeat(help_db, served, twilio_stub):
    help_app, base = served
    _, _, uid, secret = _setup(help_app)
    with help_app.app_context():
        elder_street = db.session.scalar(select(HelpDevice)).resident_id
        from app.models import Resident
        staff = StaffFactory(street=db.session.get(Resident, elder_street).community.street)
        db.session.commit()
        staff_id = staff.id
    assert heartbeat(base, uid, secret, battery=64).status_code == 201
    client = help_app.test_client()
    _login(client, staff_id)
    devices = client.get("/console/help/alerts.json").get_json()["devices"]
    assert [(d["device_uid"], d["battery"], d["outage"]) for d in devices] == [(uid, 64, None)]
    assert devices[0]["last_heartbeat_at"]
    page = client.get("/console/help").get_data(as_text=True)
    assert uid in page and "64%" in page
