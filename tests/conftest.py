"""Shared fixtures: the app on a real PostgreSQL (or SQLite) and Redis, one transaction per test."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

from app import create_app
from app.core import transports
from app.core.extensions import db
from app.core.photo_storage import LocalDiskStorage
from app.services.conversations import bot_wait
from integrations.rasa import RasaRestClient
from integrations.twilio import RecordingTwilioTransport
from integrations.wechat import RecordingWeChatSender
from tests.factories import StreetFactory
from tests.helpers.wechat import RasaStub
from tests.servers import free_port  # noqa: F401 (imported from here by many tests)
from tests.stubs.fixtures import (  # noqa: F401 (fixtures for every test folder)
    aliyun_stub,
    stub_redis,
    twilio_stub,
    wechat_stub,
)

TEST_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TEST_SETTINGS = {
    "ENV": "test",
    "DATABASE_URL": TEST_DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL,
    "RASA_URL": "http://127.0.0.1:9",  # closed port: no bot unless a test starts one
    "SECRET_KEY": "test-secret-key-of-32-characters-or-more",  # production mode needs 32 (Settings.validate)
    "BOT_SERVICE_TOKEN": "test-bot-token",
    "WECHAT_TOKEN": "test-wechat-token",
    "PUBLIC_BASE_URL": "http://linli.test",
}


def server_env(app, **overrides) -> dict:
    """The environment of a server process (gunicorn) running `app`'s settings, its database and Redis."""
    return {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()}, "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"], **overrides}


def make_test_app(**overrides):
    app = create_app({**TEST_SETTINGS, **overrides})
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=True, RATELIMIT_ENABLED=False)
    return app


def reset_schema(app) -> None:
    """An empty database migrated to head: the tests run on the schema the migrations build."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()


def sqlite_app_for(tmp_path_factory, name: str):
    """An app on a fresh SQLite file (`make run`'s default), migrated to head."""
    app = make_test_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp(name) / 'linli.db'}")
    reset_schema(app)
    return app


@pytest.fixture(scope="session")
def app():
    app = make_test_app()
    reset_schema(app)
    return app


@pytest.fixture(autouse=True)
def _clean_redis(request):
    """Each test starts with an empty test Redis database (db 9, never the dev one)."""
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    application.extensions["linli_redis"].redis.flushdb()
    # The app lives for the whole session: no test inherits the slow bot an earlier one made.
    application.extensions.pop(bot_wait.STATE_KEY, None)
    yield


@pytest.fixture
def session(app):
    """A test inside one outer transaction rolled back at its end; services' commits become savepoints."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        # A plain SQLAlchemy session: Flask-SQLAlchemy's own Session.get_bind() would pick the engine
        # over this connection, and the "rolled back" test would really commit.
        scoped = scoped_session(sessionmaker(bind=connection, join_transaction_mode="create_savepoint"))
        original, db.session = db.session, scoped
        try:
            yield scoped
        finally:
            scoped.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def committed(app, request):
    """For tests with several threads or processes: real commits, every table emptied afterwards."""
    if "session" in request.fixturenames:
        # The rolled-back session's open transaction would block the truncate below forever.
        raise pytest.UsageError("a test uses either `session` or `committed`, not both")
    with app.app_context():
        yield db.session
        db.session.remove()
        truncate_all(app)


def truncate_all(app) -> None:
    with app.app_context():
        tables = [t.name for t in db.metadata.sorted_tables]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                # A leaked transaction elsewhere must fail this test, not hang the whole suite.
                conn.execute(text("SET LOCAL lock_timeout = '20s'"))
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in reversed(tables):
                    conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def client(app, request):
    """A test client in the test's database mode: rolled back by default, real commits with `committed`."""
    if "committed" not in request.fixturenames:
        request.getfixturevalue("session")
    return app.test_client()


# --- transports and a bot stub (channel, help and reliability tests) -------------------------------------

@pytest.fixture
def rasa(app):
    """A Rasa stub wired in as the app's bot; restored afterwards."""
    stub = RasaStub()
    previous = transports.use(app).bot
    transports.use(app, bot=RasaRestClient(stub.url))
    yield stub
    transports.use(app, bot=previous)
    stub.stop()


@pytest.fixture
def slow_bot(app, rasa, monkeypatch):
    """The Rasa stub slower than the webhook's budget: "success" first, the answer through the outbox after."""
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.3)
    rasa.delay = 1.0
    rasa.reply = lambda sender, text: [{"text": "请选择科室"}]
    return rasa


@pytest.fixture
def recorders(app):
    """Recording WeChat and Twilio transports for the app; restored afterwards."""
    current = transports.use(app)
    previous = (current.wechat, current.twilio)
    wechat, twilio = RecordingWeChatSender(), RecordingTwilioTransport()
    transports.use(app, wechat=wechat, twilio=twilio)
    yield wechat, twilio
    transports.use(app, wechat=previous[0], twilio=previous[1])


# Tests that go through the webhook use real commits and empty every table afterwards: the requests run
# in their own app contexts and sessions, as they do in production.
@pytest.fixture
def web(app, committed):
    return app.test_client()


@pytest.fixture
def street(committed):
    street = StreetFactory()
    db.session.commit()
    return street


@pytest.fixture
def help_db(app):
    truncate_all(app)
    with app.app_context():
        yield db.session
        db.session.remove()
    truncate_all(app)


@pytest.fixture
def recorder(app):
    """Recording transports for the shared app, put back afterwards so other tests keep theirs."""
    with app.app_context():
        previous = transports.get()
        saved = (previous.twilio, previous.wechat)
    twilio, wechat = RecordingTwilioTransport(), RecordingWeChatSender()
    transports.use(app, twilio=twilio, wechat=wechat)
    yield SimpleNamespace(twilio=twilio, wechat=wechat)
    transports.use(app, twilio=saved[0], wechat=saved[1])


@pytest.fixture
def storage(app, tmp_path, monkeypatch):
    """Residents' photos on a disk of the test's own (tests/security, tests/integration)."""
    disk = LocalDiskStorage(str(tmp_path / "uploads"))
    monkeypatch.setitem(app.extensions, "linli_photo_storage", disk)
    return disk
