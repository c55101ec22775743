"""Cursor pagination: opaque signed cursors bound to one list, and pages that continue after the last
row seen (never an offset)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask

from app.core.errors import ValidationFailed
from app.core.pagination import MAX_LIMIT, decode, encode, page_list


@pytest.fixture(autouse=True)
def _context():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "unit-secret"
    with app.app_context():
        yield


T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_a_cursor_round_trips_datetimes_and_ids():
    cursor = encode((T0, 42), scope="requests:1")
    assert decode(cursor, scope="requests:1") == (T0, 42)
    assert "42" not in cursor or "2030" not in cursor  # opaque enough that nobody builds one by hand


@pytest.mark.parametrize("cursor", ["", "garbage", "eyJzIjoicmVxdWVzdHM6MSJ9.AAAA"])
def test_a_malformed_or_tampered_cursor_is_a_validation_error(cursor):
    with pytest.raises(ValidationFailed) as caught:
        decode(cursor, scope="requests:1")
    assert caught.value.code == "invalid_cursor"


def test_a_cursor_of_another_list_or_resident_is_refused():
    with pytest.raises(ValidationFailed):
        decode(encode((T0, 1), scope="requests:1"), scope="requests:2")


def test_list_pages_continue_after_the_last_key_seen_even_when_earlier_items_arrive():
    items = [(T0 + timedelta(hours=n), n) for n in range(5)]
    key = lambda item: item  # noqa: E731
    first = page_list(items, scope="s", key=key, cursor=None, limit=2)
    assert first.items == items[:2]
    # An item sorting before the cursor arrives: the next page neither repeats nor skips.
    grown = sorted(items + [(T0 - timedelta(hours=1), 99)])
    second = page_list(grown, scope="s", key=key, cursor=first.next_cursor, limit=2)
    third = page_list(grown, scope="s", key=key, cursor=second.next_cursor, limit=2)
    assert second.items + third.items == items[2:] and third.next_cursor is None


def test_limits_are_clamped():
    items = [(T0, n) for n in range(MAX_LIMIT + 5)]
    assert len(page_list(items, scope="s", key=lambda i: i, cursor=None, limit=10_000).items) == MAX_LIMIT
