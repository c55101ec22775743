"""PostgreSQL connections dropped under the app (pg_terminate_backend, what a failover or a restart does).

Between two requests the pool's dead connections are noticed by pool_pre_ping and replaced: the next request
succeeds. Dropped in the middle of a request, the request fails cleanly (a JSON 5xx, nothing half-written), and
the caller's retry must succeed.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from rq.job import Job
from sqlalchemy import func, select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.core.tasks import requeue_failed
from app.core.worker import build_worker
from app.models import Message, OutboundMessage, Ticket
from app.services.conversations import LATE_REPLY_KEPT
from app.services.conversations.jobs import requeue_late_replies
from app.services.delivery import sending as delivery
from integrations.rasa import RasaRestClient
from tests.reliability.support import (
    AUTH,
    StoppableRasa,
    passive_text,
    request_scoped_client,
    signed_wechat_query,
    wait_until,
    wechat_text,
)


def _dsn(app) -> str:
    return app.config["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")


def drop_app_connections(app) -> int:
    """Terminate every other session on the app's database (the app's pooled ones included)."""
    with psycopg.connect(_dsn(app), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()[0]


@pytest.fixture
def postgres_only(app):
    if not app.config["DATABASE_URL"].startswith("postgres"):
        pytest.skip("pg_terminate_backend needs PostgreSQL")


@pytest.fixture
def bot(app):
    rasa = StoppableRasa().start()
    previous = transports.use(app).bot
    transports.use(app, bot=RasaRestClient(rasa.url))
    yield rasa
    transports.use(app, bot=previous)
    rasa.stop()


def test_after_the_connections_are_dropped_between_requests_the_next_request_succeeds(
        app, postgres_only, committed, street, bot):
    client = request_scoped_client(app)
    body = {"sender": "nobody", "reason": "handoff", "text": "x"}
    assert client.get("/api/internal/departments", headers=AUTH).status_code == 200
    assert client.post("/wechat?" + signed_wechat_query(), data=wechat_text("oDbDrop0001", "在吗", 1),
                       content_type="text/xml").status_code == 200

    assert drop_app_connections(app) >= 1
    assert client.get("/api/internal/departments", headers=AUTH).status_code == 200
    assert client.post("/api/internal/handoff", json=body, headers=AUTH).status_code == 404  # a real query ran
    answer = client.post("/wechat?" + signed_wechat_query(), data=wechat_text("oDbDrop0001", "还在吗", 2),
                         content_type="text/xml")
    assert passive_text(answer.get_data(as_text=True)) == "机器人：还在吗"
    assert drop_app_connections(app) >= 1
    assert client.get("/healthz").get_json()["checks"]["database"] == "ok"


def _drop_during_bot_turn(app, bot) -> None:
    """The bot answers only after every app connection was dropped: the request is mid-turn when it happens."""
    answer = bot.reply

    def reply(sender, text):
        drop_app_connections(app)
        bot.reply = answer  # once
        return answer(sender, text)

    bot.reply = reply


def test_a_connection_dropped_mid_request_fails_the_request_cleanly(app, postgres_only, committed, street, bot):
    _drop_during_bot_turn(app, bot)
    response = request_scoped_client(app).post("/wechat?" + signed_wechat_query(),
                                      data=wechat_text("oDbDrop0002", "挂号", 11), content_type="text/xml")
    assert response.status_code >= 500 or response.status_code == 200
    if response.status_code >= 500:
        assert response.get_json()["error"]["code"] == "internal_error"  # JSON, no traceback leaked
    # The app is healthy again at once: the next request gets a fresh connection.
    assert request_scoped_client(app).get("/api/internal/departments", headers=AUTH).status_code == 200


def test_a_webhook_whose_connection_dropped_mid_turn_is_answered_on_wechats_retry(
        app, postgres_only, committed, street, bot):
    _drop_during_bot_turn(app, bot)
    xml = wechat_text("oDbDrop0003", "挂号", 21)
    first = request_scoped_client(app).post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml")
    replies = [passive_text(first.get_data(as_text=True))] if first.status_code == 200 else []
    if first.status_code != 200:  # WeChat retries a failed delivery with the same MsgId
        retry = request_scoped_client(app).post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml")
        assert retry.status_code == 200
        replies.append(passive_text(retry.get_data(as_text=True)))
    db.session.expire_all()
    queued = db.session.scalar(select(func.count(Message.id)).where(Message.direction == "out"))
    assert "机器人：挂号" in replies or queued, "the resident's message was stored but never answered"
    assert db.session.scalar(select(func.count(Message.id)).where(Message.direction == "in")) == 1
    assert db.session.scalar(select(func.count(Ticket.id))) in (0, 1)


@contextmanager
def writes_refused(app, operation: str, table: str, *, durable_only: bool = False):
    """PostgreSQL refuses `operation` ("UPDATE") on `table`, as a database failing over would. With
    `durable_only`, only commits that wait for the disk fail: the webhook's own autocommit connections
    (synchronous_commit off) still write, the ORM session's durable commit does not."""
    condition = "current_setting('synchronous_commit') <> 'off'" if durable_only else "true"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION 'write refused'; END IF; RETURN NEW; END $$")
        conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE {operation} ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()")
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TRIGGER refuse ON {table}")
            conn.exec_driver_sql(f"DROP FUNCTION refuse_{table}()")


def test_a_slow_turn_whose_durable_commit_failed_is_answered_once_and_the_bot_asked_once(
        app, postgres_only, committed, street, slow_bot, recorders):
    wechat, _ = recorders
    xml = wechat_text("oDbSlow0001", "挂号", 31)

    web = request_scoped_client(app)
    with writes_refused(app, "UPDATE", "messages", durable_only=True):
        first = web.post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml")
    assert first.status_code == 500  # the message might not be on disk: WeChat must send it again
    # WeChat's retry: the bot is still answering the first delivery, so the retry does not ask it again.
    retry = web.post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml")
    assert retry.get_data(as_text=True) == "success"

    rows = wait_until(lambda: db.session.scalars(select(OutboundMessage)).all(), what="the late reply queued")
    wait_until(lambda: get_redis().get("linli:inbound:wechat:31") == b"outbox", what="the turn recorded as over")
    assert [text for _, text in slow_bot.turns] == ["挂号"]
    assert [delivery.deliver(outbound_id=row.id) for row in rows] == ["sent"]
    assert wechat.texts_to("oDbSlow0001") == ["请选择科室"]
    assert db.session.scalars(select(Message.text).where(Message.direction == "in")).all() == ["挂号"]


def test_a_late_reply_the_database_refused_is_queued_from_redis_once_it_is_back(
        app, postgres_only, committed, street, slow_bot, recorders):
    wechat, _ = recorders
    xml = wechat_text("oDbSlow0002", "挂号", 32)
    web = request_scoped_client(app)
    with writes_refused(app, "UPDATE", "messages", durable_only=True), \
            writes_refused(app, "INSERT", "outbound_messages"):
        assert web.post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml").status_code == 500
        wait_until(lambda: get_redis().get("linli:inbound:wechat:32") == b"outbox", what="the late reply kept")
        # WeChat's retry (sent because of the 500): the answer is on its way, the bot is not asked again.
        retry = web.post("/wechat?" + signed_wechat_query(), data=xml, content_type="text/xml")
        assert retry.get_data(as_text=True) == "success"
    assert not db.session.scalars(select(OutboundMessage)).all()

    build_worker(app, ("outbound",)).work(burst=True)  # the database is back: the job queues it, then sends it
    assert wechat.texts_to("oDbSlow0002") == ["请选择科室"]
    assert [text for _, text in slow_bot.turns] == ["挂号"]
    assert db.session.scalars(select(Message.text).where(Message.direction == "in")).all() == ["挂号"]


def _late_reply_failed_for_good(app, openid: str, msg_id: int) -> Job:
    """A slow turn while the database refuses the durable mark and the outbox, and goes on refusing them through
    the late reply's tries: its job ends in RQ's failed registry. Returns that job."""
    outbound = get_queue("outbound")
    with writes_refused(app, "UPDATE", "messages", durable_only=True), \
            writes_refused(app, "INSERT", "outbound_messages"):
        response = request_scoped_client(app).post("/wechat?" + signed_wechat_query(),
                                                   data=wechat_text(openid, "挂号", msg_id), content_type="text/xml")
        assert response.status_code == 500
        wait_until(lambda: get_redis().get(f"linli:inbound:wechat:{msg_id}") == b"outbox",
                   what="the late reply kept")
        message_id = db.session.scalar(select(Message.id).where(Message.external_id == str(msg_id)))
        db.session.rollback()  # its read lock would hold up dropping the trigger
        job = Job.fetch(f"late-reply-{message_id}", connection=outbound.connection)
        job.retries_left = 0  # as if its first five tries had failed already
        job.save()
        build_worker(app, ("outbound",)).work(burst=True)
        assert outbound.failed_job_registry.get_job_ids() == [job.id]
    # No mark on the message (the durable write was refused), so the lost-answer sweep cannot see it.
    assert db.session.scalar(select(Message.late_answer_due_at).where(Message.id == message_id)) is None
    return job


def test_a_late_reply_whose_retries_ran_out_while_the_database_was_down_is_sent_once_it_is_back(
        app, postgres_only, committed, street, slow_bot, recorders):
    wechat, _ = recorders
    _late_reply_failed_for_good(app, "oDbSlow0003", 33)
    assert wechat.texts_to("oDbSlow0003") == []

    with app.app_context():
        assert requeue_late_replies() == 1
    build_worker(app, ("outbound",)).work(burst=True)
    assert wechat.texts_to("oDbSlow0003") == ["请选择科室"]
    assert get_queue("outbound").failed_job_registry.get_job_ids() == []
    with app.app_context():
        assert requeue_late_replies() == 0  # nothing left to try: no second answer
    assert [text for _, text in slow_bot.turns] == ["挂号"]


def test_a_late_reply_still_failing_after_a_day_is_given_up_loudly(
        app, postgres_only, committed, street, slow_bot, recorders, caplog):
    wechat, _ = recorders
    job = _late_reply_failed_for_good(app, "oDbSlow0004", 34)
    with app.app_context():
        later = job.created_at + LATE_REPLY_KEPT + timedelta(minutes=1)
        assert requeue_failed("conversations.queue_late_reply", max_age=LATE_REPLY_KEPT, now=later) == 0
    assert get_queue("outbound").failed_job_registry.get_job_ids() == []
    assert any(f"giving up job {job.id}" in record.getMessage() for record in caplog.records
               if record.levelname == "ERROR")
    assert wechat.texts_to("oDbSlow0004") == []
