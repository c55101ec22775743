"""The rollup tests of tests/integration/test_reports_rollup.py on SQLite (the laptop default): the upsert,
the rewrite of the recent days and the union with the live tail must work there too."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import scoped_session, sessionmaker

from app.extensions import db
from tests.conftest import make_test_app, reset_schema
from tests.integration.test_reports_rollup import (  # noqa: F401  (collected here with this module's fixtures)
    scripted_bot, test_a_backfill_equals_the_live_aggregation_of_every_message,
    test_a_classification_right_after_the_message_takes_no_lock, test_a_late_classification_recomputes_its_rolled_up_day,
    test_a_refresh_recomputes_the_recent_days_whole, test_messages_after_the_last_refresh_are_counted,
    test_refreshing_again_changes_nothing, test_reports_combining_the_rollup_and_the_live_tail_match_the_hand_computed_values,
    test_the_cli_backfills_and_rebuilds, test_the_watermark_waits_for_the_day_to_settle,
    test_without_a_watermark_row_nothing_is_rolled_up,
)
from tests.integration.test_reports_support import build


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    application = make_test_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('rollup') / 'linli.db'}")
    reset_schema(application)
    return application


@pytest.fixture
def world(app):
    """The fixture street in one transaction rolled back afterwards (pysqlite's savepoints would commit it:
    the session joins the connection's transaction and leaves it to this fixture instead)."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        scoped = scoped_session(sessionmaker(bind=connection))
        original, db.session = db.session, scoped
        try:
            assert db.session.get_bind().dialect.name == "sqlite"
            yield build()
        finally:
            scoped.remove()
            db.session = original
            outer.rollback()
            connection.close()
