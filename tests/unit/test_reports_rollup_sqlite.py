"""The rollup tests of tests/integration/test_reports_rollup.py on SQLite (the laptop default): the upsert,
the rewrite of the recent days and the union with the live tail must work there too."""
from __future__ import annotations

import pytest

from tests.conftest import sqlite_app_for
from tests.helpers.reports import rolled_back_world
from tests.integration.test_reports_rollup import (  # noqa: F401  (collected here with this module's fixtures)
    scripted_bot,
    test_a_backfill_equals_the_live_aggregation_of_every_message,
    test_a_classification_right_after_the_message_takes_no_lock,
    test_a_late_classification_recomputes_its_rolled_up_day,
    test_a_refresh_recomputes_the_recent_days_whole,
    test_messages_after_the_last_refresh_are_counted,
    test_refreshing_again_changes_nothing,
    test_reports_combining_the_rollup_and_the_live_tail_match_the_hand_computed_values,
    test_the_cli_backfills_and_rebuilds,
    test_the_watermark_waits_for_the_day_to_settle,
    test_without_a_watermark_row_nothing_is_rolled_up,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return sqlite_app_for(tmp_path_factory, "rollup")


@pytest.fixture
def world(app):
    with rolled_back_world(app) as world:
        yield world
