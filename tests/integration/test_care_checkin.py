"""The daily check-in (平安打卡): enrolment, check-ins by button, WeChat menu and SMS, refusals with nothing recorded,
and a missed day escalating resident -> contacts -> on-duty staff through the help machine, with a worker killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select, update

from app.core import tasks
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.core.worker import build_worker
from app.models import Checkin, CheckinEnrolment, EscalationStep, HelpAlert
from app.models.base import utcnow
from app.services import care
from app.services.conversations import wechat_menu
from app.services.help import escalation
from tests.conftest import TEST_SETTINGS
from tests.factories import ConversationFactory, StaffFactory
from tests.helpers.care import device_checkin, sms_to
from tests.helpers.help import make_chain, make_device
from tests.helpers.help_calls import CALLS_PATH, call_requests, drain, gather_url, twilio_settings, wait_for

AUTH = {"Authorization": "Bearer test-bot-token"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start_worker(help_app, stub) -> subprocess.Popen:
    """A real `flask worker` process on the escalation queue, in its own process group (to be SIGKILLed)."""
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()},
           **{k: str(v) for k, v in twilio_settings(stub).items()},
           "DATABASE_URL": help_app.config["DATABASE_URL"], "REDIS_URL": help_app.config["REDIS_URL"],
           "PUBLIC_BASE_URL": help_app.config["PUBLIC_BASE_URL"], "FLASK_APP": "wsgi"}
    return subprocess.Popen([sys.executable, "-m", "flask", "worker", "--queues", "escalation"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)


def _queued(help_app) -> int:
    with help_app.app_context():
        return get_redis().llen("rq:queue:escalation")
# 09:00 in Shanghai is 01:00 UTC; the day after enrolment.
ENROLLED = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
DEADLINE = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)


def _enrolled(help_app, n_contacts=2, on_duty=True, due_time="09:00", enrolled_at=ENROLLED):
    with help_app.app_context():
        elder, contacts = make_chain(n=n_contacts, channels="voice")
        care.enrol(resident_id=elder.id, due_time=due_time, now=enrolled_at)
        staff_phone = None
        if on_duty:
            staff = StaffFactory(street=elder.community.street, on_duty=True, phone="+8613600000001")
            db.session.commit()
            staff_phone = staff.phone
        return elder.id, elder.phone, [c.phone for c in contacts], staff_phone


def test_enrolment_by_the_service_api_and_a_check_in_for_someone_not_enrolled_is_refused(help_db, served,
                                                                                      twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, _ = make_chain(n=1)
        uid, secret = make_device(elder.id)
        elder_id = elder.id
    url = f"{base}/api/residents/{elder_id}/checkin"
    assert requests.put(url, json={"due_time": "09:00"}, timeout=10).status_code == 401
    assert requests.get(url, headers=AUTH, timeout=10).status_code == 404
    refused = device_checkin(base, uid, secret)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_enrolled"
    assert requests.put(url, json={"due_time": "9am"}, headers=AUTH, timeout=10).status_code == 422
    with help_app.app_context():
        assert db.session.scalar(select(func.count(Checkin.id))) == 0
        assert db.session.scalar(select(func.count(CheckinEnrolment.id))) == 0

    put = requests.put(url, json={"due_time": "08:30"}, headers=AUTH, timeout=10)
    assert put.status_code == 200 and put.json() == {"resident_id": elder_id, "due_time": "08:30", "active": True}
    first = device_checkin(base, uid, secret)
    assert first.status_code == 201 and first.json()["via"] == "device"
    assert device_checkin(base, uid, secret).json() == first.json()  # the same day: the same check-in
    assert device_checkin(base, uid, "wrong-secret").status_code == 401
    with help_app.app_context():
        assert db.session.scalar(select(func.count(Checkin.id))) == 1
    assert requests.delete(url, headers=AUTH, timeout=10).status_code == 204
    assert device_checkin(base, uid, secret).status_code == 409


def test_a_wechat_menu_tap_and_an_sms_reply_check_in(help_db, served, twilio_stub):
    help_app, _ = served
    elder_id, elder_phone, _, _ = _enrolled(help_app)
    with help_app.app_context():
        from app.models import Resident
        elder = db.session.get(Resident, elder_id)
        conversation = ConversationFactory(resident=elder)
        db.session.commit()
        assert wechat_menu.answer_event(resident=elder, conversation=conversation, event="CLICK",
                                        key="DAILY_CHECKIN") == ["已收到您今天的平安打卡，祝您平安健康！"]
        assert care.check_in_by_sms(from_phone=elder_phone, text="平安！") == "您今天已经打过平安卡了，谢谢！"
        assert care.check_in_by_sms(from_phone=elder_phone, text="我想挂号") is None
        assert care.check_in_by_sms(from_phone="+8613000000000", text="1") is None  # not an enrolled resident
        assert [c.via for c in db.session.scalars(select(Checkin))] == ["wechat"]
        stranger, _ = make_chain(n=1)
        other = ConversationFactory(resident=stranger)
        db.session.commit()
        assert wechat_menu.answer_event(resident=stranger, conversation=other, event="CLICK",
                                        key="DAILY_CHECKIN") == ["您还没有开通平安打卡，请联系社区工作人员开通。"]
        assert db.session.scalar(select(func.count(Checkin.id))) == 1


def test_a_checked_in_day_is_not_missed_and_a_missed_day_is_marked_once(help_db, served, twilio_stub):
    help_app, _ = served
    elder_id, _, _, _ = _enrolled(help_app)
    with help_app.app_context():
        care.check_in(resident_id=elder_id, via="console", now=DEADLINE - timedelta(hours=1))
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 0
        next_day = DEADLINE + timedelta(days=1)
        assert care.detect_missed(now=next_day - timedelta(seconds=5))["missed"] == 0  # not yet 09:00
        assert care.detect_missed(now=next_day + timedelta(seconds=5))["missed"] == 1
        assert care.detect_missed(now=next_day + timedelta(seconds=20))["missed"] == 0
    drain(help_app)
    with help_app.app_context():
        assert db.session.scalar(select(func.count(HelpAlert.id))) == 1


def test_a_missed_check_in_calls_the_resident_then_contacts_then_on_duty_staff_and_key_1_checks_in(
        help_db, served, twilio_stub):
    help_app, _ = served
    elder_id, elder_phone, phones, staff_phone = _enrolled(help_app)
    with help_app.app_context():
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 1
    drain(help_app)
    build_worker(help_app, ("outbound",)).work(burst=True)  # the contacts' notices go on the outbound queue
    calls = call_requests(twilio_stub)
    assert [c["to"] for c in calls] == [elder_phone]  # the resident first
    with help_app.app_context():
        alert = db.session.scalar(select(HelpAlert))
        assert (alert.source, alert.lead_resident) == ("checkin", True)
    told = sms_to(twilio_stub)
    assert [to for to, _ in told] == [phones[0]] and "没有按时平安打卡" in told[0][1]  # the family, not the staff

    # The resident hears their own script; nobody answers; the chain goes on to each contact, then staff.
    twiml = twilio_stub.post_signed(calls[0]["url"], {"CallSid": calls[0]["sid"]})
    assert "平安请按1" in twiml.text
    for expected in (phones[0], phones[1], staff_phone):
        twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
        drain(help_app)
        assert call_requests(twilio_stub)[-1]["to"] == expected
    contact_call = call_requests(twilio_stub)[1]
    assert "没有按时打卡" in twilio_stub.post_signed(contact_call["url"], {"CallSid": contact_call["sid"]}).text

    # Round two starts with the resident again, after the pause between rounds (escalation.ROUND_PAUSE: the
    # scheduler's move, made here by the sweeper at that time); this time they press 1: checked in, alert closed.
    twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
    drain(help_app)
    with help_app.app_context():
        escalation.sweep(now=utcnow() + escalation.ROUND_PAUSE + timedelta(seconds=1))
    drain(help_app)
    again = call_requests(twilio_stub)[-1]
    assert again["to"] == elder_phone
    pressed = twilio_stub.post_signed(gather_url(again), {"CallSid": again["sid"], "Digits": "1"})
    assert "已为您打卡" in pressed.text
    with help_app.app_context():
        alert = db.session.scalar(select(HelpAlert))
        assert (alert.status, alert.outcome) == ("resolved", "checked_in")
        assert [c.via for c in db.session.scalars(select(Checkin))] == ["call"]
    assert "已补打平安卡" in sms_to(twilio_stub)[-1][1]
    drain(help_app)
    assert len(call_requests(twilio_stub)) == 5  # nothing rings after the check-in


@pytest.mark.slow
def test_a_missed_check_in_survives_a_worker_killed_mid_call_request_and_places_each_call_once(
        help_db, served, twilio_stub):
    help_app, _ = served
    # The worker's jobs run on the clock: a time already passed today, enrolled two days ago.
    elder_id, elder_phone, phones, staff_phone = _enrolled(help_app, n_contacts=2, due_time="00:00",
                                                           enrolled_at=utcnow() - timedelta(days=2))
    first_worker = _start_worker(help_app, twilio_stub)
    second_worker = None
    try:
        with help_app.app_context():
            assert tasks.later("care.detect_missed", job_id="test-detect-1")  # what the ticker does
        first = wait_for(lambda: [c for c in call_requests(twilio_stub) if c["sid"]], timeout=60,
                         what="the resident's call")[0]
        assert first["to"] == elder_phone
        # Twilio is slow to take the next call; the worker is killed while it waits for the answer.
        twilio_stub.fail(path=CALLS_PATH, sleep=2)
        twilio_stub.status_callback(first["sid"], "no-answer")
        wait_for(lambda: len(twilio_stub.calls_to(CALLS_PATH)) == 2, what="the second call request")
        _kill(first_worker)
        with help_app.app_context():
            attempt = db.session.scalar(select(EscalationStep).where(EscalationStep.step == 2))
            assert attempt.status == "dialing"
            alert = db.session.scalar(select(HelpAlert))
            db.session.execute(update(HelpAlert).where(HelpAlert.id == alert.id)
                               .values(step_due_at=alert.step_due_at - timedelta(minutes=5)))
            db.session.commit()
            # Retried jobs find the day marked and the alert raised: nothing is raised or placed twice.
            assert tasks.later("care.detect_missed", job_id="test-detect-2")
            assert tasks.later("care.raise_missed", enrolment_ids=[db.session.scalar(select(CheckinEnrolment.id))],
                               job_id="test-raise-again")
        second_worker = _start_worker(help_app, twilio_stub)
        with help_app.app_context():
            assert tasks.later("help.sweep_alerts", job_id="test-sweep-1")
        third = wait_for(lambda: [c for c in call_requests(twilio_stub) if c["to"] == phones[1] and c["sid"]],
                         what="the third call")[0]
        twilio_stub.status_callback(third["sid"], "no-answer")
        staff_call = wait_for(lambda: [c for c in call_requests(twilio_stub) if c["to"] == staff_phone and c["sid"]],
                              what="the on-duty staff call")[0]
        pressed = twilio_stub.post_signed(gather_url(staff_call), {"CallSid": staff_call["sid"], "Digits": "1"})
        assert "已确认由您前往" in pressed.text
        wait_for(lambda: _queued(help_app) == 0, what="the queue to drain")
        assert sorted(c["to"] for c in call_requests(twilio_stub)) == sorted([elder_phone, *phones, staff_phone])
        with help_app.app_context():
            assert db.session.scalar(select(func.count(HelpAlert.id))) == 1
            alert = db.session.scalar(select(HelpAlert))
            assert alert.status == "accepted" and alert.accepted_via == "voice"
    finally:
        _kill(first_worker)
        if second_worker is not None:
            _kill(second_worker)
