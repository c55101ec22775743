"""An enrolled resident's SMS through the real /sms webhook: only a check-in word (or a bare "1"/"好" answering the
missed-check-in call, with nothing said since) checks in; a booking's "好" reaches the bot, a help contact's "1"
accepts the alert, and a phone shared by two enrolled residents checks in both."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Checkin, CheckinEnrolment, EscalationStep, HelpAlert
from app.models.base import utcnow
from app.services import care
from app.services.help import alerts as help_alerts
from tests.factories import ResidentFactory
from tests.helpers.help import add_contact
from tests.helpers.help_calls import drain
from tests.integration.test_sms_webhook import AUTH_TOKEN, PHONE, rows, signed_post, sms


@pytest.fixture(autouse=True)
def twilio_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)


def _enrolled(phone: str = PHONE, **resident):
    person = ResidentFactory(phone=phone, is_elderly=True, **resident)
    db.session.commit()
    care.enrol(resident_id=person.id, due_time="09:00", now=utcnow() - timedelta(days=2))
    return person


def _checkins() -> list[tuple[int, str]]:
    db.session.expire_all()
    return [(c.resident_id, c.via) for c in db.session.scalars(select(Checkin).order_by(Checkin.resident_id))]


def _replies() -> list[str]:
    return [row.body for row in rows()]


def test_a_yes_to_the_bots_booking_question_reaches_the_bot_and_checks_nobody_in(web, rasa, street):
    _enrolled()
    rasa.reply = lambda sender, text: [{"text": "内科 12月5日 上午9点，确认预约吗？" if text == "我要挂号" else "已为您预约"}]
    signed_post(web, "/sms", sms("SMC0001", "我要挂号"))
    signed_post(web, "/sms", sms("SMC0002", "好"))
    assert [text for _, text in rasa.turns] == ["我要挂号", "好"]
    assert _checkins() == []
    assert _replies()[-1] == "已为您预约"


def test_an_enrolled_help_contact_replying_1_to_a_help_sms_accepts_the_alert(web, rasa, street, app):
    elder = ResidentFactory(is_elderly=True)
    db.session.commit()
    spouse = _enrolled()
    contact = add_contact(elder.id, 1, phone=PHONE, channels="sms")
    add_contact(elder.id, 2, channels="voice", relation="staff")
    alert_id = help_alerts.raise_alert(resident_id=elder.id, source="console").id
    drain(app)
    signed_post(web, "/sms", sms("SMC0003", "1"))
    db.session.expire_all()
    alert = db.session.get(HelpAlert, alert_id)
    assert (alert.status, alert.accepted_contact_id) == ("accepted", contact.id)
    assert _checkins() == [] and rasa.turns == []
    # The same person's 平安 afterwards is their check-in: the help request is answered, no longer waiting.
    signed_post(web, "/sms", sms("SMC0004", "平安"))
    assert _checkins() == [(spouse.id, "sms")]


def test_a_check_in_word_checks_in_and_a_second_one_the_same_day_records_nothing_more(web, rasa, street):
    person = _enrolled()
    signed_post(web, "/sms", sms("SMC0005", "平安！"))
    assert _checkins() == [(person.id, "sms")]
    assert _replies() == ["已收到您今天的平安打卡，祝您平安健康！"]
    signed_post(web, "/sms", sms("SMC0006", "签到"))
    assert _checkins() == [(person.id, "sms")]
    assert _replies()[-1] == "您今天已经打过平安卡了，谢谢！"
    assert rasa.turns == []


def test_a_bare_1_or_yes_checks_in_only_as_the_answer_to_the_missed_check_in_call(web, rasa, street, app):
    person = _enrolled()
    signed_post(web, "/sms", sms("SMC0007", "1"))  # nobody asked: a "1" is the bot's
    assert _checkins() == [] and [text for _, text in rasa.turns] == ["1"]
    alert_id = help_alerts.raise_alert(resident_id=person.id, source="checkin", lead_resident=True).id
    enrolment = db.session.scalar(select(CheckinEnrolment).where(CheckinEnrolment.resident_id == person.id))
    enrolment.last_alert_id = alert_id
    db.session.commit()
    drain(app)
    assert db.session.scalar(select(EscalationStep.to_address).where(EscalationStep.alert_id == alert_id)) == PHONE
    signed_post(web, "/sms", sms("SMC0008", "好"))  # the call asked 平安请按1; nothing said since
    assert _checkins() == [(person.id, "sms")]
    db.session.expire_all()
    assert db.session.get(HelpAlert, alert_id).outcome == "checked_in"
    assert len(rasa.turns) == 1


def test_a_bare_yes_after_the_bot_spoke_since_the_check_in_call_is_the_bots(web, rasa, street, app):
    person = _enrolled()
    alert_id = help_alerts.raise_alert(resident_id=person.id, source="checkin", lead_resident=True).id
    enrolment = db.session.scalar(select(CheckinEnrolment).where(CheckinEnrolment.resident_id == person.id))
    enrolment.last_alert_id = alert_id
    db.session.commit()
    drain(app)
    rasa.reply = lambda sender, text: [{"text": "确认预约吗？"}]
    signed_post(web, "/sms", sms("SMC0009", "我要挂号"))
    signed_post(web, "/sms", sms("SMC0010", "好"))
    assert [text for _, text in rasa.turns] == ["我要挂号", "好"]
    assert _checkins() == []


def test_two_residents_enrolled_with_one_phone_are_both_checked_in_and_the_reply_names_them(web, rasa, street):
    first = _enrolled(name="王秀英")
    second = _enrolled(name="李建国")
    signed_post(web, "/sms", sms("SMC0011", "打卡"))
    assert _checkins() == [(first.id, "sms"), (second.id, "sms")]
    assert _replies() == ["已收到王秀英、李建国今天的平安打卡，祝您平安健康！"]
    assert db.session.scalar(select(func.count(Checkin.id))) == 2
