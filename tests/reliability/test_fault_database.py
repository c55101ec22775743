"""PostgreSQL connections dropped under the app (pg_terminate_backend, what a failover or a restart does).

Between two requests the pool's dead connections are noticed by pool_pre_ping and replaced: the next request
succeeds. Dropped in the middle of a request, the request fails cleanly (a JSON 5xx, nothing half-written), and
the caller's retry must succeed.
"""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message, Ticket
from app.services import transports
from integrations.rasa import RasaRestClient
from tests.integration.test_wechat_support import street  # noqa: F401 (fixture)
from tests.reliability.support import (
    AUTH, StoppableRasa, passive_text, request_scoped_client, signed_wechat_query, wechat_text,
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
