"""A missed check-in (平安打卡) when Aliyun carries the numbers: the resident's own call says the check-in script, their
key 1 is their check-in (not an acceptance of their own alert), and an SMS reply checks in as it does on Twilio.

The real Aliyun SDK against tests/stubs/aliyun_stub.py; the receipts come through the app's real HTTP server.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.core.extensions import db
from app.core.worker import build_worker
from app.models import Checkin, EscalationStep, HelpAlert
from app.services import care
from tests.factories import StaffFactory
from tests.helpers.help import make_chain
from tests.helpers.help_calls import drain
from tests.stubs.aliyun_stub import DEFAULT_VOICE_TEMPLATES, NOT_ANSWERED

# 09:00 in Shanghai is 01:00 UTC; the day after enrolment.
ENROLLED = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
DEADLINE = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)


def _missed(help_app, n_contacts=2):
    """An enrolled resident whose check-in time passed: the alert is raised and the resident's call placed."""
    with help_app.app_context():
        elder, contacts = make_chain(n=n_contacts, channels="voice")
        care.enrol(resident_id=elder.id, due_time="09:00", now=ENROLLED)
        StaffFactory(street=elder.community.street, on_duty=True, phone="+8613600000001")
        db.session.commit()
        elder_id, elder_phone, phones = elder.id, elder.phone, [c.phone for c in contacts]
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 1
    drain(help_app)
    build_worker(help_app, ("outbound",)).work(burst=True)
    return elder_id, elder_phone, phones


def _alert(help_app) -> HelpAlert:
    with help_app.app_context():
        alert = db.session.scalar(select(HelpAlert))
        db.session.expunge(alert)
        return alert


def test_the_residents_own_call_says_the_check_in_script_and_key_1_checks_in_and_stops_the_chain(
        help_db, aliyun_served, aliyun_stub):
    help_app, _ = aliyun_served
    _, elder_phone, _ = _missed(help_app)
    [call] = aliyun_stub.placed_calls()
    assert "+86" + call["to"] == elder_phone
    params = call["params"]
    # The check-in words (平安请按1 …), not the help script ("…按下了求助键，您能前往帮助，请按1").
    assert params["StartCode"] == DEFAULT_VOICE_TEMPLATES["resident_intro"]
    assert "平安请按1" in aliyun_stub.template_words(params["StartCode"])
    assert {params["MenuKeyMap.1.Code"], params["MenuKeyMap.2.Code"], params["ByeCode"]} == {
        DEFAULT_VOICE_TEMPLATES["resident_key1"], DEFAULT_VOICE_TEMPLATES["resident_key2"],
        DEFAULT_VOICE_TEMPLATES["resident_no_key"]}

    answer = aliyun_stub.report_key(call["call_id"], "1")
    assert answer.status_code == 200 and answer.json()["code"] == 0
    # Aliyun's VoiceReport of the call's end carries the key again: taken once.
    assert aliyun_stub.report_end(call["call_id"], "200000", dtmf="1").status_code == 200
    drain(help_app)
    alert = _alert(help_app)
    assert (alert.status, alert.outcome, alert.accepted_via) == ("resolved", "checked_in", None)
    with help_app.app_context():
        assert [c.via for c in db.session.scalars(select(Checkin))] == ["call"]
    assert len(aliyun_stub.placed_calls()) == 1  # nobody else is rung
    assert aliyun_stub.texts_to(elder_phone) == []  # the resident is not sent "已确认由您前往" for their own alert


def test_the_residents_key_2_moves_the_chain_on_at_once(help_db, aliyun_served, aliyun_stub):
    help_app, _ = aliyun_served
    _, _, phones = _missed(help_app)
    [call] = aliyun_stub.placed_calls()
    assert aliyun_stub.report_key(call["call_id"], "2").status_code == 200
    drain(help_app)
    alert = _alert(help_app)
    assert (alert.status, alert.step, alert.accepted_contact_id) == ("escalating", 2, None)
    assert "+86" + aliyun_stub.placed_calls()[-1]["to"] == phones[0]
    with help_app.app_context():
        assert db.session.scalar(select(Checkin)) is None


def test_the_contacts_of_a_missed_check_in_hear_that_the_day_was_missed(help_db, aliyun_served, aliyun_stub):
    help_app, _ = aliyun_served
    _missed(help_app)
    aliyun_stub.report_end(aliyun_stub.placed_calls()[0]["call_id"], NOT_ANSWERED)
    drain(help_app)
    contact_call = aliyun_stub.placed_calls()[1]
    assert contact_call["params"]["StartCode"] == DEFAULT_VOICE_TEMPLATES["checkin_intro"]
    assert contact_call["params"]["MenuKeyMap.1.Code"] == DEFAULT_VOICE_TEMPLATES["key1"]
    assert "没有按时打卡" in aliyun_stub.template_words(contact_call["params"]["StartCode"])


def test_an_sms_reply_from_the_resident_checks_in_and_they_read_the_confirmation(help_db, aliyun_served, aliyun_stub):
    help_app, _ = aliyun_served
    _, elder_phone, _ = _missed(help_app)
    assert aliyun_stub.report_sms_reply(elder_phone, "平安").status_code == 200
    build_worker(help_app, ("default",)).work(burst=True)  # the SMS conversation's turn (conversations.receive)
    drain(help_app)
    build_worker(help_app, ("outbound",)).work(burst=True)
    alert = _alert(help_app)
    assert (alert.status, alert.outcome) == ("resolved", "checked_in")
    with help_app.app_context():
        assert [c.via for c in db.session.scalars(select(Checkin))] == ["sms"]
        assert db.session.scalar(select(EscalationStep).where(EscalationStep.status == "accepted")) is None
    assert any("平安打卡" in t for t in aliyun_stub.texts_to(elder_phone))
