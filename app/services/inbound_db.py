"""The webhook path's own database connections: every statement commits by itself, and on PostgreSQL
without waiting for the write-ahead log to reach the disk.

A resident's message costs the database one lookup and one insert, and the passive reply's transcript one
more insert. Run through the ORM session, each of those turns into BEGIN, the statement, SET LOCAL and
COMMIT, plus a pool pre-ping per transaction: about a dozen round trips and most of the webhook's CPU
(issue 3). Here they are three statements on one connection checked out once per message.

Skipping the flush wait risks losing the last fraction of a second of these commits if the database server
crashes (never corrupting anything). That is acceptable for a message whose answer goes back in the
webhook's own response, and for that answer's transcript row; every other outcome is made durable through
the ORM session, whose commits wait for the disk, before the channel hears "received"
(conversations._make_durable). A durable commit flushes the log up to itself, these rows included.

Rule for callers: the ORM session must have nothing uncommitted when one of these connections writes. On
SQLite the two would wait for each other's lock; on PostgreSQL the row written here would not see it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from flask import current_app
from sqlalchemy import Connection, Engine, create_engine

from app.extensions import db

_EXTENSION_KEY = "linli.inbound_engine"
_lock = threading.Lock()


@contextmanager
def connect() -> Iterator[Connection]:
    """One autocommit connection for a webhook turn."""
    with engine().connect() as conn:
        yield conn


def engine() -> Engine:
    """This app's engine for the webhook path, created on first use beside Flask-SQLAlchemy's."""
    app = current_app._get_current_object()
    found = app.extensions.get(_EXTENSION_KEY)
    if found is None:
        with _lock:
            found = app.extensions.get(_EXTENSION_KEY)
            if found is None:
                found = app.extensions[_EXTENSION_KEY] = _create(db.engine, app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    return found


def _create(main: Engine, options: dict) -> Engine:
    options = dict(options)
    if main.dialect.name == "postgresql":
        # A setting of these connections only: the app's other commits (bookings, tickets) still wait.
        options["connect_args"] = {**options.get("connect_args", {}), "options": "-c synchronous_commit=off"}
    return create_engine(main.url, isolation_level="AUTOCOMMIT", **options)
