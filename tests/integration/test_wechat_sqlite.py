"""The WeChat webhook on SQLite, `make run`'s default: the webhook's own autocommit connections
(services/inbound_db.py) and the ORM session write one database file without waiting on each other's locks,
and a message is still stored once and answered once."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Conversation, Message, Street, Ticket, TicketEvent
from app.services import conversations
from app.services.tickets import lifecycle as tickets
from integrations.rasa import ScriptedBot
from tests.conftest import sqlite_app_for, truncate_all
from tests.factories import StreetFactory
from tests.helpers.wechat import post_plain, text_xml

pytestmark = pytest.mark.timeout(60)
OPENID = "oSqlite0001"


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    return sqlite_app_for(tmp_path_factory, "wechat")


@pytest.fixture
def web(sqlite_app):
    previous = transports.use(sqlite_app).bot
    transports.use(sqlite_app, bot=ScriptedBot(lambda sender, text: f"收到：{text}"))
    with sqlite_app.app_context():
        get_redis().flushdb()
        StreetFactory()
        db.session.commit()
    yield sqlite_app.test_client()
    transports.use(sqlite_app, bot=previous)
    truncate_all(sqlite_app)


def _messages(app) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [(m.direction, m.text, m.external_id)
                for m in db.session.scalars(select(Message).order_by(Message.id))]


def test_a_message_is_stored_once_and_answered_in_the_response(sqlite_app, web):
    assert "收到：你好" in post_plain(web, text_xml(OPENID, "你好", 9001)).get_data(as_text=True)  # a new sender
    assert "收到：社保卡" in post_plain(web, text_xml(OPENID, "社保卡", 9002)).get_data(as_text=True)
    retry = post_plain(web, text_xml(OPENID, "社保卡", 9002)).get_data(as_text=True)  # WeChat's retry
    assert "收到：社保卡" in retry
    assert _messages(sqlite_app) == [("in", "你好", "9001"), ("out", "收到：你好", None),
                                     ("in", "社保卡", "9002"), ("out", "收到：社保卡", None)]


def test_with_a_ticket_open_the_session_and_the_webhooks_connection_both_write(sqlite_app, web):
    post_plain(web, text_xml(OPENID, "你好", 9101))
    with sqlite_app.app_context():
        conversation = db.session.scalar(select(Conversation))
        ticket = tickets.open_ticket(street_id=db.session.scalar(select(Street.id)), source="resident",
                                     subject="转人工", conversation_id=conversation.id,
                                     resident_id=conversation.resident_id)
        db.session.commit()
        ticket_id = ticket.id
    body = post_plain(web, text_xml(OPENID, "我要找人", 9102)).get_data(as_text=True)
    assert "人工" in body
    with sqlite_app.app_context():
        events = db.session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == ticket_id,
                                                                  TicketEvent.kind == "message_in")).all()
    assert events == ["我要找人"]
    assert _messages(sqlite_app)[-2:] == [("in", "我要找人", "9102"), ("out", conversations.HANDED_OVER, None)]


def test_with_the_bot_down_the_resident_gets_the_apology_and_the_message_sits_on_a_ticket_once(sqlite_app, web):
    transports.use(sqlite_app, bot=ScriptedBot(down=True))
    body = post_plain(web, text_xml(OPENID, "我要挂号", 9201)).get_data(as_text=True)
    assert conversations.APOLOGY in body
    with sqlite_app.app_context():
        message_id = db.session.scalar(select(Message.id).where(Message.external_id == "9201"))
        ticket = db.session.scalar(select(Ticket))
        # The same hand-over again (as a retried late answer would do it) adds nothing.
        turn = conversations.Turn(channel="wechat", resident_id=ticket.resident_id,
                                  conversation_id=ticket.conversation_id, message_id=message_id, bot_sender="",
                                  address=OPENID, text="我要挂号", kind="text")
        conversations.queue_late_reply(turn=turn, messages=None, failure="ConnectionError: down")
        events = db.session.scalars(select(TicketEvent.data).where(TicketEvent.kind == "message_in")).all()
    assert [event["message_id"] for event in events] == [message_id]
