"""The SMS hotline's webhooks: Twilio's signature, one turn per MessageSid, segmented replies, status callbacks,
opt-outs."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from app.core.extensions import db
from app.models import Conversation, Message, OutboundMessage, Resident, Ticket
from app.services.delivery import sending as delivery
from app.services.delivery import sms_text
from integrations.twilio import TwilioSendError

AUTH_TOKEN = "twilio-test-auth-token"
PHONE = "+8613912345678"
PUBLIC = "http://linli.test"  # PUBLIC_BASE_URL in tests/conftest.py


@pytest.fixture(autouse=True)
def twilio_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)


def signed_post(client, path: str, params: dict, *, token: str = AUTH_TOKEN, signed_url: str | None = None):
    signature = RequestValidator(token).compute_signature(signed_url or PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def sms(sid: str, body: str, sender: str = PHONE) -> dict:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC1", "From": sender, "To": "+15005550006",
            "Body": body, "NumSegments": "1"}


def rows() -> list[OutboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.sequence)))


def test_signed_sms_gets_empty_twiml_and_the_reply_through_the_outbox(web, rasa, street):
    response = signed_post(web, "/sms", sms("SM0001", "你好"))

    assert response.status_code == 200
    assert response.get_data(as_text=True).endswith("<Response></Response>")
    assert rasa.turns == [(rasa.turns[0][0], "你好")]
    (row,) = rows()
    assert (row.channel, row.to_address, row.body, row.status) == ("sms", PHONE, "收到：你好", "pending")


@pytest.mark.parametrize("case, kwargs", [
    ("wrong token", {"token": "someone-elses-token"}),
    ("signed for the internal host, not the public URL", {"signed_url": "http://127.0.0.1:5000/sms"}),
])
def test_forged_twilio_requests_get_403_and_change_nothing(web, rasa, street, case, kwargs):
    assert signed_post(web, "/sms", sms("SM0002", "hi"), **kwargs).status_code == 403, case
    assert web.post("/sms", data=sms("SM0003", "hi")).status_code == 403  # unsigned
    assert rasa.turns == [] and db.session.scalar(select(Message.id)) is None


def test_the_same_message_sid_twice_is_one_turn(web, rasa, street):
    signed_post(web, "/sms", sms("SM0004", "挂号"))
    signed_post(web, "/sms", sms("SM0004", "挂号"))
    assert len(rasa.turns) == 1 and len(rows()) == 1


def test_a_long_chinese_reply_is_split_at_sentences_into_at_most_five_one_segment_texts(web, rasa, street):
    sentences = [f"第{n}条办事须知请您带好身份证和户口本到社区服务中心一楼窗口办理。" for n in range(10, 24)]
    rasa.reply = lambda sender, text: [{"text": "".join(sentences)}]
    signed_post(web, "/sms", sms("SM0005", "办事须知"))

    parts = [r.body for r in rows()]
    assert 2 <= len(parts) <= sms_text.MAX_PARTS
    assert all(len(p) <= sms_text.UCS2_PART for p in parts)
    assert parts[0].startswith(sentences[0]) and parts[-1] == sms_text.POINTER
    assert all(p.endswith("。") for p in parts)  # never cut inside a sentence


def test_status_callbacks_mark_delivered_or_failed_and_a_failure_reaches_staff(web, rasa, street, recorders):
    _, twilio = recorders
    signed_post(web, "/sms", sms("SM0006", "你好"))
    (row,) = rows()
    assert delivery.deliver(outbound_id=row.id) == "sent"
    sid = rows()[0].external_id
    assert twilio.sms_to(PHONE) == ["收到：你好"]

    status = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert signed_post(web, "/sms/status", status).status_code == 204
    assert rows()[0].status == "failed"
    assert db.session.scalar(select(Conversation.needs_attention)) is True
    ticket = db.session.scalar(select(Ticket).where(Ticket.source == "delivery_failure"))
    assert "delivery_failed" in [e.kind for e in ticket.events]

    assert signed_post(web, "/sms/status", {**status, "MessageStatus": "delivered"}).status_code == 204
    assert rows()[0].status == "failed"  # a late, out-of-order callback does not undo the failure


def test_an_opted_out_number_is_marked_never_texted_and_cleared_when_it_writes_again(web, rasa, street, recorders):
    _, twilio = recorders
    twilio.fail_next(TwilioSendError("Attempt to send to unsubscribed recipient", code=21610, status=400))
    signed_post(web, "/sms", sms("SM0007", "你好"))
    assert delivery.deliver(outbound_id=rows()[0].id) == "undeliverable"
    assert db.session.scalar(select(Resident.sms_opted_out)) is True

    signed_post(web, "/sms", sms("SM0008", "我回来了"))  # writing in again is their START
    assert db.session.scalar(select(Resident.sms_opted_out)) is False
    assert delivery.deliver(outbound_id=rows()[1].id) == "sent"
    assert twilio.sms_to(PHONE) == ["收到：我回来了"]
