"""The same hand-worked figures on SQLite (the laptop default): the portable paths (window-function
percentiles, date(..., '+8 hours') days, julianday durations) must give PostgreSQL's numbers."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import scoped_session, sessionmaker

from app.extensions import db
from tests.conftest import make_test_app, reset_schema
from tests.integration.test_reports_support import CHECKS, build


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    app = make_test_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('reports') / 'linli.db'}")
    reset_schema(app)
    return app


@pytest.fixture
def sqlite_world(sqlite_app):
    """The fixture street, flushed inside one transaction that is rolled back afterwards."""
    with sqlite_app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        scoped = scoped_session(sessionmaker(bind=connection))
        original, db.session = db.session, scoped
        try:
            yield build()
        finally:
            scoped.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_report_figures_on_sqlite_match_the_hand_computed_values(sqlite_world, check):
    assert db.session.get_bind().dialect.name == "sqlite"
    check(sqlite_world)
