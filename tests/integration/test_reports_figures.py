"""Every report figure on PostgreSQL against the hand-worked street of test_reports_support."""
from __future__ import annotations

import pytest

from tests.integration.test_reports_support import CHECKS, world  # noqa: F401  (fixture)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_report_figures_match_the_hand_computed_values(world, check):  # noqa: F811
    check(world)
