"""Outbox delivery through the real wechatpy and twilio clients against the stub servers on loopback."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Conversation, OutboundMessage, Ticket
from app.models.base import utcnow
from app.services.delivery import sending as delivery
from app.services.outbox import messages as outbox
from tests.factories import ChannelIdentityFactory, ResidentFactory, StreetFactory
from tests.helpers.wechat import real_clients

OPENID = "oOutboxResident0001"
PHONE = "+8613800001111"
KEFU = "/cgi-bin/message/custom/send"


@pytest.fixture
def stubs(app, committed, wechat_stub, twilio_stub):
    """The app's WeChat and Twilio transports are the real clients, aimed at the stubs."""
    with real_clients(app, wechat_stub, twilio_stub) as clients:
        yield clients


@pytest.fixture
def conversation(committed):
    resident = ResidentFactory(phone=PHONE, community__street=StreetFactory())
    ChannelIdentityFactory(resident=resident, channel="wechat", external_id=OPENID)
    db.session.commit()
    return outbox.conversation_for(resident_id=resident.id, channel="wechat")


def queue(conversation, *bodies) -> list[int]:
    rows = [outbox.stage_message(conversation_id=conversation.id, body=b) for b in bodies]
    db.session.commit()
    return [r.id for r in rows]


def row(outbound_id) -> OutboundMessage:
    db.session.expire_all()
    return db.session.get(OutboundMessage, outbound_id)


def kefu_texts(stub) -> list[str]:
    return [c["json"]["text"]["content"] for c in stub.calls_to(KEFU) if c["response"]["errcode"] == 0]


def test_outside_the_48_hour_window_the_reply_goes_by_sms_to_the_residents_phone(stubs, conversation):
    wechat_stub, twilio_stub = stubs
    wechat_stub.set_outside_window(OPENID)
    (rid,) = queue(conversation, "您的预约已确认：明天上午9点，内科。")

    assert delivery.deliver(outbound_id=rid) == "rerouted"
    assert (row(rid).channel, row(rid).to_address, row(rid).status) == ("sms", PHONE, "pending")
    assert delivery.deliver(outbound_id=rid) == "sent"

    (sent,) = twilio_stub.sent_messages()
    assert (sent["to"], sent["body"]) == (PHONE, "您的预约已确认：明天上午9点，内科。")
    assert row(rid).external_id == sent["sid"] and "45015" in row(rid).last_error


def test_outside_the_window_without_a_phone_the_row_is_undeliverable_and_staff_are_told(stubs, conversation):
    wechat_stub, twilio_stub = stubs
    conversation.resident.phone = None
    db.session.commit()
    wechat_stub.set_outside_window(OPENID)
    (rid,) = queue(conversation, "提醒")
    assert delivery.deliver(outbound_id=rid) == "undeliverable"
    assert twilio_stub.sent_messages() == []
    assert_staff_told(conversation, rid)


def assert_staff_told(conversation, rid) -> None:
    """The "a person is told" path of a row nobody can deliver: the conversation flagged, a ticket naming the row."""
    assert db.session.get(Conversation, conversation.id).needs_attention is True
    ticket = db.session.scalar(select(Ticket).where(Ticket.source == "delivery_failure"))
    (event,) = [e for e in ticket.events if e.kind == "delivery_failed"]
    assert event.data["outbound_id"] == rid and event.data["status"] == "undeliverable"


def test_a_resident_who_unfollowed_the_account_gets_the_row_by_sms_with_the_route_recorded(stubs, conversation):
    wechat_stub, twilio_stub = stubs
    conversation.resident.wechat_subscribed = False
    db.session.commit()
    (rid,) = queue(conversation, "候补到号：明天上午9点内科，回复“确认候补”约上。")

    assert delivery.deliver(outbound_id=rid) == "rerouted"
    assert delivery.deliver(outbound_id=rid) == "sent"

    assert wechat_stub.calls_to(KEFU) == []  # WeChat takes nothing for a resident who no longer follows
    (sent,) = twilio_stub.sent_messages()
    assert (sent["to"], sent["body"]) == (PHONE, "候补到号：明天上午9点内科，回复“确认候补”约上。")
    done = row(rid)
    assert (done.status, done.route, done.channel, done.provider) == ("sent", "sms", "sms", "twilio")
    assert "unfollowed" in done.last_error and "rerouted to SMS" in done.last_error
    assert db.session.get(Conversation, conversation.id).needs_attention is False


def test_a_resident_who_unfollowed_without_a_phone_is_undeliverable_and_staff_are_told(stubs, conversation):
    wechat_stub, twilio_stub = stubs
    conversation.resident.wechat_subscribed = False
    conversation.resident.phone = None
    db.session.commit()
    (rid,) = queue(conversation, "候补到号")

    assert delivery.deliver(outbound_id=rid) == "undeliverable"
    assert wechat_stub.calls_to(KEFU) == [] and twilio_stub.sent_messages() == []
    assert_staff_told(conversation, rid)


def test_a_failed_send_is_retried_with_backoff_and_then_delivered(stubs, conversation):
    wechat_stub, _ = stubs
    wechat_stub.fail(path=KEFU, code=-1)  # "system busy": worth another try
    (rid,) = queue(conversation, "您好")

    assert delivery.deliver(outbound_id=rid) == "pending"
    retry_at = row(rid).next_attempt_at
    assert row(rid).attempts == 1 and retry_at > utcnow()
    assert delivery.deliver(outbound_id=rid) == "not_due"  # nothing is sent early
    assert len(wechat_stub.calls_to(KEFU)) == 1

    assert delivery.deliver(outbound_id=rid, now=retry_at + timedelta(seconds=1)) == "sent"
    assert kefu_texts(wechat_stub) == ["您好"] and row(rid).attempts == 2


def test_after_six_failed_attempts_the_row_fails_and_staff_get_a_ticket(stubs, conversation):
    wechat_stub, _ = stubs
    wechat_stub.fail(path=KEFU, status=502, times=6)
    (rid,) = queue(conversation, "通知")
    for _ in range(delivery.MAX_ATTEMPTS):
        delivery.deliver(outbound_id=rid, now=row(rid).next_attempt_at + timedelta(seconds=1))

    assert row(rid).status == "failed" and row(rid).attempts == 6
    assert db.session.get(Conversation, conversation.id).needs_attention is True
    ticket = db.session.scalar(select(Ticket).where(Ticket.source == "delivery_failure"))
    assert [e.kind for e in ticket.events][-1] == "delivery_failed"


def test_two_workers_delivering_one_row_send_it_once(stubs, conversation, app):
    wechat_stub, _ = stubs
    (rid,) = queue(conversation, "只发一次")
    results = []

    def work():
        with app.app_context():
            results.append(delivery.deliver(outbound_id=rid))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("sent") == 1
    assert kefu_texts(wechat_stub) == ["只发一次"]


def test_the_sweeper_requeues_rows_left_pending_and_rows_of_a_dead_worker(stubs, conversation):
    waiting, stuck = queue(conversation, "等了很久", "发送中断")
    now = utcnow()
    db.session.get(OutboundMessage, waiting).next_attempt_at = now - timedelta(minutes=5)
    stuck_row = db.session.get(OutboundMessage, stuck)
    stuck_row.status, stuck_row.next_attempt_at = "sending", now - timedelta(seconds=1)  # lease over
    db.session.commit()

    assert delivery.sweep() == 2
    assert row(stuck).status == "pending"
    jobs = get_redis().lrange("rq:queue:outbound", 0, -1)
    assert {f"deliver-{waiting}".encode(), f"deliver-{stuck}".encode()} <= set(jobs)
