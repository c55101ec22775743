"""The WeChat webhook's hot path: what a known resident's message costs the database, the intents recorded
after the turn, and a retry that finds the first delivery's message lost."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, func, select

from app.extensions import db
from app.models import Conversation, Message
from app.redis_client import get_redis
from app.services import bot_insights, tickets, transports
from app.services.conversations import _Guard
from integrations.rasa import ScriptedBot
from tests.integration.test_wechat_support import (  # noqa: F401 (fixtures)
    post_plain, rasa, street, text_xml, web,
)

OPENID = "oHotPath0001"


@contextmanager
def statements(app):
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        seen.append(" ".join(statement.split())[:80])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_known_residents_message_needs_no_ticket_queries(app, web, rasa, street):
    assert "收到：你好" in post_plain(web, text_xml(OPENID, "你好", 7001)).get_data(as_text=True)
    with statements(app) as seen:
        body = post_plain(web, text_xml(OPENID, "社保卡怎么补办", 7002)).get_data(as_text=True)
    assert "收到：社保卡怎么补办" in body
    # One lookup (resident, conversation, "could a ticket take this?"), the message, the reply.
    assert [s.split(" ")[0] for s in seen if not s.startswith("SET LOCAL")] == ["SELECT", "INSERT", "INSERT"], seen
    assert not any(s.startswith("SELECT tickets") for s in seen)


def test_with_an_open_ticket_the_message_goes_to_staff_not_the_bot(app, web, rasa, street):
    post_plain(web, text_xml(OPENID, "你好", 7101))
    with app.app_context():
        conversation = db.session.scalar(select(Conversation))
        tickets.open_ticket(street_id=street.id, source="resident", subject="转人工", conversation_id=conversation.id,
                            resident_id=conversation.resident_id)
        db.session.commit()
    turns = len(rasa.turns)
    body = post_plain(web, text_xml(OPENID, "我要找人", 7102)).get_data(as_text=True)
    assert "人工" in body and len(rasa.turns) == turns


def test_intents_are_recorded_after_the_turn_in_batches(app, web, street):
    previous = transports.use(app).bot
    transports.use(app, bot=ScriptedBot(default="好的", intents={"老年卡怎么办": "faq", "啊吧啊吧": "nlu_fallback"}))
    try:
        post_plain(web, text_xml(OPENID, "老年卡怎么办", 7201))
        post_plain(web, text_xml(OPENID, "啊吧啊吧", 7202))
        with app.app_context():
            assert get_redis().llen(bot_insights.PENDING_KEY) == 2
            assert bot_insights.classify_pending() == 2
            intents = db.session.scalars(select(Message.intent).where(Message.direction == "in")
                                         .order_by(Message.id)).all()
            assert intents == ["faq", "nlu_fallback"]
            assert get_redis().llen(bot_insights.PENDING_KEY) == 0
    finally:
        transports.use(app, bot=previous)


def test_while_the_bot_is_down_queued_intents_wait_in_order(app, web, street):
    previous = transports.use(app).bot
    bot = ScriptedBot(default="好的", intents={"一": "greet", "二": "faq"})
    transports.use(app, bot=bot)
    try:
        post_plain(web, text_xml(OPENID, "一", 7301))
        post_plain(web, text_xml(OPENID, "二", 7302))
        with app.app_context():
            bot.down = True
            assert bot_insights.classify_pending() == 0
            assert get_redis().llen(bot_insights.PENDING_KEY) == 2
            bot.down = False
            assert bot_insights.classify_pending() == 2
            assert db.session.scalars(select(Message.intent).where(Message.direction == "in")
                                      .order_by(Message.id)).all() == ["greet", "faq"]
    finally:
        transports.use(app, bot=previous)


def test_a_retry_that_takes_over_a_failed_turn_stores_a_message_the_database_lost(app, web, rasa, street):
    """A failed first delivery whose message a database crash lost (its commit did not wait for the disk)."""
    with app.app_context():
        guard = _Guard("wechat", "7401")
        assert guard.claim()
        guard.finish("failed")
    body = post_plain(web, text_xml(OPENID, "挂号", 7401)).get_data(as_text=True)
    assert "收到：挂号" in body
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id)).where(Message.external_id == "7401")) == 1
