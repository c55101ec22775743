"""REPORTS_DATABASE_URL: the reports read the database it names (a streaming replica in production; here a second
database the test fills itself, so that what the report shows can only have come from there)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.extensions import db
from app.models import Message
from app.services import reports
from tests.conftest import TEST_DATABASE_URL, make_test_app, reset_schema
from tests.factories import CommunityFactory, ConversationFactory, ResidentFactory, StreetFactory

REPLICA_URL = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + TEST_DATABASE_URL.rsplit("/", 1)[1] + "_reports"
# What the reports get: the replica's URL with every transaction read-only, as a hot standby refuses writes. A write
# slipping into reports.run fails here ("cannot execute ... in a read-only transaction") instead of passing unseen.
READ_ONLY_REPLICA_URL = REPLICA_URL + "?options=-c%20default_transaction_read_only%3Don"
DAY = date(2024, 5, 1)


@pytest.fixture(scope="module")
def replica():
    """A second database at head holding one street with one resident's message on DAY; returns the street's id."""
    if not TEST_DATABASE_URL.startswith("postgresql"):
        pytest.skip("the replica test creates a PostgreSQL database")
    admin = make_test_app()
    with admin.app_context(), db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        name = REPLICA_URL.rsplit("/", 1)[1]
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    replica_app = make_test_app(DATABASE_URL=REPLICA_URL)
    reset_schema(replica_app)
    with replica_app.app_context():
        street = StreetFactory(name="副本街道")
        conversation = ConversationFactory(resident=ResidentFactory(community=CommunityFactory(street=street)),
                                           channel="wechat")
        db.session.add(Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                               text="社保卡怎么补办", created_at=datetime(2024, 5, 1, 2, tzinfo=timezone.utc)))
        db.session.commit()
        street_id = street.id
        db.engine.dispose()
    return street_id


def volume(street_id: int) -> dict:
    return reports.run(name="volume", scope=reports.build_scope(street_id=street_id, start=DAY, end=DAY))["totals"]


def test_reports_read_the_replica_when_reports_database_url_is_set(app, session, replica, monkeypatch):
    assert volume(replica)["conversations"] == 0  # the primary has no such street's messages

    monkeypatch.setitem(app.config, "REPORTS_DATABASE_URL", READ_ONLY_REPLICA_URL)
    assert volume(replica)["conversations"] == 1
    # Only the report read there: the app's own session still talks to the primary.
    bind = db.session.get_bind()
    assert getattr(bind, "engine", bind).url.database == TEST_DATABASE_URL.rsplit("/", 1)[1]


def test_the_replica_the_reports_read_refuses_writes(app, session, replica, monkeypatch):
    """The guard of the test above is live: on the replica's connection a write fails, as on a hot standby."""
    monkeypatch.setitem(app.config, "REPORTS_DATABASE_URL", READ_ONLY_REPLICA_URL)
    with reports.replica.reading(), pytest.raises(DBAPIError, match="read-only transaction"):
        db.session.execute(text("UPDATE messages SET intent = 'x'"))
