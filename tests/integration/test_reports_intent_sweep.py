"""The intent queue is in Redis only; `reports.sweep_unclassified` finds in the database what Redis forgot (an empty
restart, a failed RPUSH): the messages the bot answered whose intent is still NULL, each queued again once."""
from __future__ import annotations

from datetime import timedelta

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Message
from app.models.base import utcnow
from app.services.reports import intents
from integrations.rasa import ScriptedBot
from tests.factories import ConversationFactory


def add(conversation, direction: str, author: str, text: str, minutes_ago: float, intent: str | None = None) -> int:
    message = Message(conversation_id=conversation.id, channel="wechat", direction=direction, author=author,
                      text=text, intent=intent, created_at=utcnow() - timedelta(minutes=minutes_ago))
    db.session.add(message)
    db.session.flush()
    return message.id


def test_the_sweep_queues_again_what_an_empty_redis_forgot_and_only_that(app, session):
    bot_turn, human, fresh, classified, queued, old = (ConversationFactory() for _ in range(6))
    lost = add(bot_turn, "in", "resident", "社保卡怎么补办", 10)
    add(bot_turn, "out", "bot", "您可以到社区服务中心补办。", 10)
    second = add(bot_turn, "in", "resident", "谢谢", 9)  # answered by staff, not the bot: stays unclassified
    add(bot_turn, "out", "staff", "不客气", 8)
    add(human, "in", "resident", "我要找人工", 10)
    add(human, "out", "staff", "您好，我是工作人员", 9)
    add(fresh, "in", "resident", "你好", 0.5)  # the queue's own path still has its chance
    add(fresh, "out", "bot", "您好", 0.5)
    add(classified, "in", "resident", "你好", 10, intent="greet")
    add(classified, "out", "bot", "您好", 10)
    waiting = add(queued, "in", "resident", "挂号", 10)
    add(queued, "out", "bot", "请问挂哪个科室？", 10)
    add(old, "in", "resident", "你好", 60 * 25)  # older than the sweep looks back
    add(old, "out", "bot", "您好", 60 * 25)
    session.commit()
    redis = get_redis()
    redis.rpush(intents.PENDING_KEY, waiting)

    assert intents.sweep_unclassified() == 1
    assert [int(i) for i in redis.lrange(intents.PENDING_KEY, 0, -1)] == [waiting, lost]
    assert second not in [int(i) for i in redis.lrange(intents.PENDING_KEY, 0, -1)]

    # The queue drained without classifying them (a text the NLU refuses): the sweep queues what it had not queued
    # before, and nothing twice, so such a message is not asked again every period...
    redis.delete(intents.PENDING_KEY)
    assert intents.sweep_unclassified() == 1
    assert [int(i) for i in redis.lrange(intents.PENDING_KEY, 0, -1)] == [waiting]
    redis.delete(intents.PENDING_KEY)
    assert intents.sweep_unclassified() == 0
    # ...until Redis forgets that too (restarted empty): then once more.
    redis.flushdb()
    assert intents.sweep_unclassified() == 2
    assert sorted(int(i) for i in redis.lrange(intents.PENDING_KEY, 0, -1)) == [lost, waiting]

    previous = transports.use(app).bot
    transports.use(app, bot=ScriptedBot(default="好的", intents={"社保卡怎么补办": "faq", "挂号": "book"}))
    try:
        assert intents.classify_pending() == 2
    finally:
        transports.use(app, bot=previous)
    assert db.session.get(Message, lost).intent == "faq"
    assert db.session.get(Message, second).intent is None
    assert intents.sweep_unclassified() == 0


def test_the_sweep_is_a_periodic_job():
    from app.core import tasks

    assert {p.name: p.every_seconds for p in tasks.periodic()}["reports.sweep_unclassified"] == 300


def test_messages_swept_already_do_not_hide_the_ones_after_them(app, session, monkeypatch):
    monkeypatch.setattr(intents, "SWEEP_BATCH", 2)
    ids = []
    for _ in range(5):
        conversation = ConversationFactory()
        ids.append(add(conversation, "in", "resident", "啊吧啊吧", 10))
        add(conversation, "out", "bot", "抱歉，我没听懂。", 10)
    session.commit()
    redis = get_redis()
    redis.zadd(intents.SWEPT_KEY, {str(i): utcnow().timestamp() for i in ids[:4]})  # asked already, unclassifiable
    assert intents.sweep_unclassified() == 1
    assert [int(i) for i in redis.lrange(intents.PENDING_KEY, 0, -1)] == [ids[4]]
