"""Cursor (keyset) pagination for the mobile lists.

A cursor names the sort key of the last row a client saw, never an offset, so rows arriving between
two page requests cannot shift the next page into a duplicate or a gap. Cursors are signed and bound
to their list: a client treats them as opaque strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, or_

from app.core.errors import ValidationFailed
from app.core.extensions import db

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    items: list
    next_cursor: str | None


def page_query(query, *, scope: str, columns: Sequence, descending: bool, cursor: str | None,
               limit: int = DEFAULT_LIMIT) -> Page:
    """One page of a select ordered by `columns` (the last one unique, e.g. the id)."""
    limit = _bounded(limit)
    direction = (lambda c: c.desc()) if descending else (lambda c: c.asc())
    query = query.order_by(*(direction(c) for c in columns))
    if cursor:
        query = query.where(_after(columns, decode(cursor, scope=scope), descending))
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return _page(rows, limit, scope, lambda row: tuple(getattr(row, c.key) for c in columns))


def page_list(items: list, *, scope: str, key: Callable[[Any], tuple], cursor: str | None,
              limit: int = DEFAULT_LIMIT) -> Page:
    """One page of a list a service already returned in ascending `key` order."""
    limit = _bounded(limit)
    if cursor:
        last = decode(cursor, scope=scope)
        items = [item for item in items if key(item) > last]
    return _page(items[:limit + 1], limit, scope, key)


def encode(values: tuple, *, scope: str) -> str:
    return _serializer().dumps({"s": scope, "k": [_dump(v) for v in values]})


def decode(cursor: str, *, scope: str) -> tuple:
    try:
        data = _serializer().loads(cursor)
        if data.get("s") != scope:
            raise BadSignature("cursor of another list")
        return tuple(_load(v) for v in data["k"])
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise ValidationFailed("the cursor is not valid for this list", code="invalid_cursor") from None


def _page(rows: list, limit: int, scope: str, key: Callable) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode(key(rows[-1]), scope=scope) if more and rows else None)


def _after(columns: Sequence, values: tuple, descending: bool):
    """Row-value comparison (a, b) > (x, y) spelled out, which PostgreSQL and SQLite both index well."""
    if len(values) != len(columns):
        raise ValidationFailed("the cursor is not valid for this list", code="invalid_cursor")
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        beyond = column < values[i] if descending else column > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def _bounded(limit: int | None) -> int:
    return max(1, min(int(limit or DEFAULT_LIMIT), MAX_LIMIT))


def _dump(value):
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _load(value):
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    return value


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="linli-list-cursor")
