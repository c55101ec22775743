"""The webhook path's own database connections: every statement commits by itself, and on PostgreSQL
without waiting for the write-ahead log to reach the disk.

A resident's message costs the database a lookup and an insert (one statement on PostgreSQL, see
inbound_sender.store), and the passive reply's transcript one more insert. Run through the ORM session, each
turned into BEGIN, the statement, SET LOCAL and COMMIT, plus a pool pre-ping per transaction: about a dozen
round trips and most of the webhook's CPU (issue 3). Here they are two or three statements on one connection
checked out once per message.

Skipping the flush wait risks losing the last fraction of a second of these commits if the database server
crashes (never corrupting anything). That is acceptable for a message whose answer goes back in the
webhook's own response, and for that answer's transcript row; every other outcome is made durable through
the ORM session, whose commits wait for the disk, before the channel hears "received"
(conversations._make_durable). A durable commit flushes the log up to itself, these rows included.

Rule for callers: the ORM session must have nothing uncommitted when one of these connections writes. On
SQLite the two would wait for each other's lock; on PostgreSQL the row written here would not see it.
"""
from __future__ import annotations

import select
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg
from flask import current_app
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from app.core.extensions import db

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
    postgresql = main.dialect.name == "postgresql"
    if postgresql:
        # A setting of these connections only: the app's other commits (bookings, tickets) still wait.
        options["connect_args"] = {**options.get("connect_args", {}), "options": "-c synchronous_commit=off"}
        options.pop("pool_pre_ping", None)  # replaced by the check below, which costs no round trip
    created = create_engine(main.url, isolation_level="AUTOCOMMIT", **options)
    if postgresql:
        event.listen(created, "checkout", _refuse_if_server_hung_up)
    return created


def _refuse_if_server_hung_up(dbapi_connection, connection_record, connection_proxy) -> None:
    """A pre-ping without a round trip. An idle connection has nothing to read unless the server closed it
    (a restart, a terminated backend): then the pool opens a fresh one instead of failing the request."""
    poller = select.poll()
    try:
        poller.register(dbapi_connection.fileno(), select.POLLIN)
    except (OSError, ValueError, psycopg.Error):
        raise DisconnectionError("the connection is closed") from None
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")
