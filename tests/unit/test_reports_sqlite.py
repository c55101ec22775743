"""The same hand-worked figures on SQLite (the laptop default): the portable paths (window-function
percentiles, date(..., '+8 hours') days, julianday durations) must give PostgreSQL's numbers."""
from __future__ import annotations

import pytest

from app.core.extensions import db
from tests.conftest import sqlite_app_for
from tests.helpers.reports import CHECKS, rolled_back_world


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    return sqlite_app_for(tmp_path_factory, "reports")


@pytest.fixture
def sqlite_world(sqlite_app):
    with rolled_back_world(sqlite_app) as world:
        yield world


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_report_figures_on_sqlite_match_the_hand_computed_values(sqlite_world, check):
    assert db.session.get_bind().dialect.name == "sqlite"
    check(sqlite_world)
