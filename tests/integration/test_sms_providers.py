"""Outbox SMS and sign-in codes go by the provider that reaches the number: mainland numbers by Aliyun (approved
templates and their variables), the rest by Twilio, each through its real client against its stub on loopback.

TELEPHONY_PROVIDER=by_number with the default TELEPHONY_ALIYUN_PREFIXES (+86), as a deployment with residents on
mainland phones and family abroad runs (docs/help.md, "Providers"; docs/channels.md, "SMS through Aliyun").
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Conversation, OutboundMessage
from app.services import booking, tickets
from app.services.booking import reminders
from app.services.delivery import sending as delivery
from tests.conftest import make_test_app
from tests.factories import ConversationFactory, StaffFactory
from tests.helpers.booking import NOW, clinic, resident_with_patient
from tests.helpers.help_calls import aliyun_settings, twilio_settings
from tests.stubs.aliyun_stub import DEFAULT_SMS_TEMPLATES

MAINLAND = "+8613812345678"
HONG_KONG = "+85291234567"
EVENING = NOW + timedelta(days=1, hours=8)  # 18:00 the day before the visit


@pytest.fixture
def sms_app(help_db, aliyun_stub, twilio_stub):
    """An app whose SMS go by number: the real Aliyun SDK and twilio client, aimed at the stubs."""
    app = make_test_app(**{**aliyun_settings(aliyun_stub), **twilio_settings(twilio_stub),
                           "TELEPHONY_PROVIDER": "by_number", "SMS_CODE_COUNTRY_CODES": "86,852"})
    with app.app_context():
        yield app


def sms_resident(phone: str):
    """A resident who writes by SMS from `phone`, with a patient (for bookings)."""
    resident, patient = resident_with_patient()
    resident.phone = phone
    resident.preferred_channel = "sms"
    ConversationFactory(resident=resident, channel="sms", address=phone)
    db.session.commit()
    return resident, patient


def booked_reminder(phone: str) -> OutboundMessage:
    resident, _ = sms_resident(phone)
    slot, = clinic()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    message = reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING)
    assert message is not None and message.channel == "sms"
    return message


def staff_reply(phone: str, body: str) -> OutboundMessage:
    resident, _ = sms_resident(phone)
    staff = StaffFactory()
    db.session.commit()
    ticket = tickets.open_ticket(street_id=staff.street_id, source="bot", subject="需要人工",
                                 conversation_id=resident_conversation_id(resident.id), resident_id=resident.id,
                                 body="楼道灯不亮")
    return tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body=body)


def resident_conversation_id(resident_id: int) -> int:
    return db.session.scalar(select(Conversation.id).where(Conversation.resident_id == resident_id))


def row(outbound_id: int) -> OutboundMessage:
    db.session.expire_all()
    return db.session.get(OutboundMessage, outbound_id)


# --- the outbox ----------------------------------------------------------------------------------------------------

def test_a_mainland_sms_residents_reminder_goes_by_aliyun_as_the_reminder_template(sms_app, aliyun_stub, twilio_stub):
    message = booked_reminder(MAINLAND)

    assert delivery.deliver(outbound_id=message.id) == "sent"

    [sent] = aliyun_stub.sent_texts()
    assert sent["to"] == "13812345678" and sent["template"] == DEFAULT_SMS_TEMPLATES["booking_reminder"]
    assert set(sent["params"]) == {"patient", "time", "place", "seat"} and sent["out_id"] == f"outbox-{message.id}"
    assert sent["text"].startswith("【邻里】就诊提醒：") and sent["params"]["seat"] in sent["text"]
    assert (row(message.id).provider, row(message.id).route, row(message.id).external_id) == (
        "aliyun", "sms", sent["biz_id"])
    assert twilio_stub.sent_messages() == []


def test_a_staff_reply_to_a_mainland_phone_fills_the_staff_reply_templates_content_part_by_part(
        sms_app, aliyun_stub, twilio_stub):
    words = "您好，关于您反映的楼道灯不亮的问题，物业已经安排电工明天上午十点上门维修，请家中留人。谢谢！"
    reply = staff_reply(MAINLAND, words)

    assert delivery.deliver(outbound_id=reply.id) == "sent"

    texts = aliyun_stub.sent_texts()
    assert {t["template"] for t in texts} == {DEFAULT_SMS_TEMPLATES["staff_reply"]}
    # Each ${content} within Aliyun's 35 characters (the stub refuses longer), together the whole reply, in order.
    assert "".join(t["params"]["content"] for t in texts) == words and len(texts) > 1
    assert texts[0]["text"] == "【邻里】社区工作人员回复您：您好，关于您反映的楼道灯不亮的问题，"
    assert row(reply.id).external_id == texts[0]["biz_id"] and row(reply.id).provider == "aliyun"
    assert twilio_stub.sent_messages() == []


def test_a_number_abroad_gets_its_reminder_and_staff_reply_by_twilio_as_written(sms_app, aliyun_stub, twilio_stub):
    reminder = booked_reminder(HONG_KONG)
    reply = staff_reply("+85291234568", "好的，已为您登记。")

    assert delivery.deliver(outbound_id=reminder.id) == "sent"
    assert delivery.deliver(outbound_id=reply.id) == "sent"

    sent = {m["to"]: m for m in twilio_stub.sent_messages()}
    assert sent[HONG_KONG]["body"] == row(reminder.id).body and sent["+85291234568"]["body"] == "好的，已为您登记。"
    assert (row(reminder.id).provider, row(reminder.id).external_id) == ("twilio", sent[HONG_KONG]["sid"])
    assert aliyun_stub.sent_texts() == []


def test_an_aliyun_refusal_worth_a_retry_is_retried_with_backoff_and_then_sent(sms_app, aliyun_stub):
    aliyun_stub.fail(path="/SendSms", status=200, message="isv.BUSINESS_LIMIT_CONTROL")  # flow control: later
    message = booked_reminder(MAINLAND)

    assert delivery.deliver(outbound_id=message.id) == "pending"
    retry_at = row(message.id).next_attempt_at
    assert row(message.id).attempts == 1 and "BUSINESS_LIMIT_CONTROL" in row(message.id).last_error
    assert delivery.deliver(outbound_id=message.id) == "not_due"

    assert delivery.deliver(outbound_id=message.id, now=retry_at + timedelta(seconds=1)) == "sent"
    assert len(aliyun_stub.sent_texts()) == 1 and row(message.id).attempts == 2


def test_an_aliyun_refusal_that_cannot_succeed_fails_the_row_at_once_and_staff_get_a_ticket(sms_app, aliyun_stub):
    aliyun_stub.fail(path="/SendSms", status=200, message="isv.MOBILE_NUMBER_ILLEGAL")
    message = booked_reminder(MAINLAND)

    assert delivery.deliver(outbound_id=message.id) == "failed"
    assert row(message.id).attempts == 1 and row(message.id).provider == "aliyun"


# --- sign-in codes -------------------------------------------------------------------------------------------------

def _sign_in_with_texted_code(sms_app, phone: str, code: str):
    client = sms_app.test_client()
    return client.post("/api/v1/auth/sign-in", json={"phone": phone, "code": code},
                       environ_base={"REMOTE_ADDR": "10.0.0.1"})


def test_a_mainland_sign_in_code_goes_by_aliyuns_verification_code_template(sms_app, aliyun_stub, twilio_stub):
    answer = sms_app.test_client().post("/api/v1/auth/sms-code", json={"phone": "13812345678"},
                                        environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert answer.status_code == 202, answer.get_data(as_text=True)

    [sent] = aliyun_stub.sent_texts()
    assert sent["to"] == "13812345678" and sent["template"] == DEFAULT_SMS_TEMPLATES["verify_code"]
    assert re.fullmatch(r"\d{6}", sent["params"]["code"]) and twilio_stub.sent_messages() == []
    assert _sign_in_with_texted_code(sms_app, "13812345678", sent["params"]["code"]).status_code == 200


def test_a_sign_in_code_to_a_number_abroad_goes_by_twilio(sms_app, aliyun_stub, twilio_stub):
    answer = sms_app.test_client().post("/api/v1/auth/sms-code", json={"phone": HONG_KONG},
                                        environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert answer.status_code == 202, answer.get_data(as_text=True)

    [sent] = twilio_stub.sent_messages()
    assert sent["to"] == HONG_KONG and "登录验证码" in sent["body"] and aliyun_stub.sent_texts() == []
    code = re.search(r"\d{6}", sent["body"]).group(0)
    assert _sign_in_with_texted_code(sms_app, HONG_KONG, code).status_code == 200


def test_a_sign_in_code_aliyun_refuses_is_a_503_for_the_app(sms_app, aliyun_stub):
    aliyun_stub.fail(path="/SendSms", status=200, message="isp.SYSTEM_ERROR")
    client = sms_app.test_client()
    answer = client.post("/api/v1/auth/sms-code", json={"phone": "13812345678"},
                         environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "sms_unavailable"
    assert aliyun_stub.sent_texts() == []
