"""Every report figure on PostgreSQL against the hand-worked street of tests/helpers/reports.py."""
from __future__ import annotations

import pytest

from tests.helpers.reports import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_report_figures_match_the_hand_computed_values(world, check):
    check(world)
