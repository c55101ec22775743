"""The WeChat webhook's hot path: what a known resident's message costs the database, when its commit must
wait for the disk, the intents recorded after the turn, and retries after a failure."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.models import Conversation, Message, OutboundMessage
from app.services.conversations import fast_commit as inbound_db
from app.services.conversations.dedup import InboundGuard
from app.services.reports import intents as bot_insights
from app.services.tickets import lifecycle as tickets
from integrations.rasa import RasaRestClient, ScriptedBot
from tests.helpers.wechat import RasaStub, post_plain, text_xml

OPENID = "oHotPath0001"


@dataclass
class Committed:
    """One committed transaction: its statements, and whether its commit waited for the disk."""

    statements: list[str]
    waited_for_disk: bool


@contextmanager
def transactions(app):
    """Each committed transaction, in order (this test's requests run one at a time): those of the ORM
    session's engine, whose commits wait for the disk, and the webhook's autocommit statements (inbound_db),
    each a transaction of its own whose commit does not wait on PostgreSQL."""
    done: list[Committed] = []
    current: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        current.append(" ".join(statement.split())[:60])

    def record_autocommit(conn, cursor, statement, params, context, executemany):
        done.append(Committed([" ".join(statement.split())[:60]], waited_for_disk=not postgresql))

    def commit(conn):
        done.append(Committed(list(current), waited_for_disk=True))
        current.clear()

    with app.app_context():
        engine, autocommit = db.engine, inbound_db.engine()
        postgresql = engine.dialect.name == "postgresql"
    listeners = [(engine, "before_cursor_execute", record), (engine, "commit", commit),
                 (autocommit, "before_cursor_execute", record_autocommit)]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield done
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)


def _statements(committed: list[Committed]) -> list[str]:
    return [statement for transaction in committed for statement in transaction.statements]


def test_a_known_residents_message_needs_no_ticket_queries(app, web, rasa, street):
    assert "收到：你好" in post_plain(web, text_xml(OPENID, "你好", 7001)).get_data(as_text=True)
    with transactions(app) as committed:
        body = post_plain(web, text_xml(OPENID, "社保卡怎么补办", 7002)).get_data(as_text=True)
    assert "收到：社保卡怎么补办" in body
    seen = _statements(committed)
    # One lookup (resident, conversation, "could a ticket take this?") storing the message, then the reply;
    # SQLite, which has no INSERT inside WITH, looks up and inserts separately.
    postgresql = app.config["DATABASE_URL"].startswith("postgresql")
    assert [s.split(" ")[0] for s in seen] == (["WITH", "INSERT"] if postgresql else ["SELECT", "INSERT", "INSERT"]), seen
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


def test_intents_are_recorded_after_the_turn_oldest_first(app, web, street):
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


def _queued_ids(app) -> list[int]:
    with app.app_context():
        return [int(i) for i in get_redis().lrange(bot_insights.PENDING_KEY, 0, -1)]


def _message_id(app, external_id: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Message.id).where(Message.external_id == external_id))


def test_a_late_answer_is_queued_for_its_intent_and_an_apology_is_not(app, web, rasa, street, recorders, monkeypatch):
    post_plain(web, text_xml(OPENID, "你好", 7251))
    with app.app_context():
        get_redis().delete(bot_insights.PENDING_KEY)
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.1)
    rasa.delay = 0.4
    assert post_plain(web, text_xml(OPENID, "挂号", 7252)).get_data(as_text=True) == "success"
    assert _queued_ids(app) == []  # the bot has not answered yet
    _wait_for_outbox(app, 1)
    deadline = time.monotonic() + 5
    while not _queued_ids(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _queued_ids(app) == [_message_id(app, "7252")]

    rasa.delay, rasa.status = 0.0, 500  # the bot fails: the resident gets an apology, nothing to classify
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 4.0)
    post_plain(web, text_xml(OPENID, "挂号", 7253))
    # On a loaded machine the failing bot can outlast the budget too: then its apology is a late answer, queued by
    # a thread after the webhook returned. Wait for the turn to end, so nothing runs on into the next test.
    _wait_until_turn_ended(app, "7253")
    assert _queued_ids(app) == [_message_id(app, "7252")]


def _wait_until_turn_ended(app, external_id: str) -> None:
    key = f"linli:inbound:wechat:{external_id}"
    deadline = time.monotonic() + 10
    with app.app_context():
        while (get_redis().get(key) or b"running").startswith(b"running"):
            assert time.monotonic() < deadline, f"the turn of message {external_id} did not end"
            time.sleep(0.05)


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
        guard = InboundGuard("wechat", "7401")
        assert guard.claim()
        guard.finish("failed")
    body = post_plain(web, text_xml(OPENID, "挂号", 7401)).get_data(as_text=True)
    assert "收到：挂号" in body
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id)).where(Message.external_id == "7401")) == 1


def test_only_the_webhooks_own_connections_skip_the_wait_for_the_disk(app):
    if not app.config["DATABASE_URL"].startswith("postgresql"):
        pytest.skip("SQLite's commits always wait for the disk: there is no flush to skip")
    with app.app_context():
        with inbound_db.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        assert db.session.execute(text("SHOW synchronous_commit")).scalar() == "on"
        db.session.rollback()


def test_a_message_answered_in_the_response_is_not_waited_for_but_one_answered_later_is(
        app, web, rasa, street, recorders, monkeypatch):
    if not app.config["DATABASE_URL"].startswith("postgresql"):
        pytest.skip("SQLite's commits always wait for the disk: there is no flush to skip")
    post_plain(web, text_xml(OPENID, "你好", 7501))
    with transactions(app) as answered_now:
        assert "收到：社保" in post_plain(web, text_xml(OPENID, "社保", 7502)).get_data(as_text=True)
    assert answered_now and not any(t.waited_for_disk for t in answered_now), answered_now

    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.2)
    rasa.delay = 0.8
    with transactions(app) as answered_later:
        assert post_plain(web, text_xml(OPENID, "挂号", 7503)).get_data(as_text=True) == "success"
        before_success = list(answered_later)
    # The message's own commit skipped the wait; a commit that waits for the disk came before "success".
    stored = [t for t in before_success if any(s.startswith(("INSERT INTO messages", "WITH sender")) for s in t.statements)]
    assert stored and not stored[0].waited_for_disk, before_success
    assert before_success[-1].waited_for_disk and any(s.startswith("UPDATE messages SET late_answer_due_at")
                                                      for s in before_success[-1].statements), before_success
    _wait_for_outbox(app, 1)


def _wait_for_outbox(app, count: int) -> list[OutboundMessage]:
    deadline = time.monotonic() + 5
    with app.app_context():
        while time.monotonic() < deadline:
            rows = db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
            if len(rows) >= count:
                return rows
            db.session.remove()
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} outbox rows")


def _queue(app, *texts) -> list[int]:
    with app.app_context():
        conversation = db.session.scalar(select(Conversation))
        ids = []
        for text in texts:
            message = Message(conversation_id=conversation.id, channel="wechat", direction="in",
                              author="resident", text=text)
            db.session.add(message)
            db.session.commit()
            bot_insights.classify_later(message_id=message.id)
            ids.append(message.id)
        return ids


def _intents(app, ids) -> list[str | None]:
    with app.app_context():
        return [db.session.get(Message, i).intent for i in ids]


def test_a_text_the_nlu_refuses_does_not_hold_up_the_others(app, web, rasa, street):
    post_plain(web, text_xml(OPENID, "你好", 7701))
    with app.app_context():
        get_redis().delete(bot_insights.PENDING_KEY)
    nlu = RasaStub(intent=lambda text: None if text == "毒" else "greet")  # refuses one text with a 500
    previous = transports.use(app).bot
    transports.use(app, bot=RasaRestClient(nlu.url))
    try:
        ids = _queue(app, "毒", "一", "二")
        with app.app_context():
            assert bot_insights.classify_pending() == 2
            assert get_redis().llen(bot_insights.PENDING_KEY) == 0
        assert _intents(app, ids) == [None, "greet", "greet"]
    finally:
        transports.use(app, bot=previous)
        nlu.stop()


def test_a_database_error_while_recording_keeps_the_message_queued(app, web, street, monkeypatch):
    previous = transports.use(app).bot
    transports.use(app, bot=ScriptedBot(default="好的", intents={"一": "greet", "二": "faq"}))
    post_plain(web, text_xml(OPENID, "你好", 7801))
    with app.app_context():
        get_redis().delete(bot_insights.PENDING_KEY)
    record = bot_insights.record_intent
    calls = []

    def flaky_record(*, message_id):
        calls.append(message_id)
        if len(calls) == 1:
            raise OperationalError("UPDATE messages", {}, Exception("server closed the connection"))
        return record(message_id=message_id)

    monkeypatch.setattr(bot_insights, "record_intent", flaky_record)
    try:
        ids = _queue(app, "一", "二")
        with app.app_context():
            try:
                bot_insights.classify_pending()
            except OperationalError:
                db.session.rollback()
            assert get_redis().llen(bot_insights.PENDING_KEY) == 2  # nothing left the queue
            assert bot_insights.classify_pending() == 2
        assert _intents(app, ids) == ["greet", "faq"]
    finally:
        transports.use(app, bot=previous)


def test_a_drain_stops_while_a_help_alert_or_a_reply_waits_for_the_worker(app, web, street):
    previous = transports.use(app).bot
    transports.use(app, bot=ScriptedBot(default="好的", intents={"一": "greet", "二": "faq"}))
    post_plain(web, text_xml(OPENID, "你好", 7901))
    try:
        with app.app_context():
            get_redis().delete(bot_insights.PENDING_KEY)
        ids = _queue(app, "一", "二")
        with app.app_context():
            waiting = get_queue("escalation").enqueue("builtins.print", "an alert's next call")
            assert bot_insights.classify_pending() == 0
            assert get_redis().llen(bot_insights.PENDING_KEY) == 2
            waiting.delete()
            assert bot_insights.classify_pending() == 2
        assert _intents(app, ids) == ["greet", "faq"]
    finally:
        transports.use(app, bot=previous)
