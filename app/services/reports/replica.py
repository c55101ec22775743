"""The reports on a streaming replica when REPORTS_DATABASE_URL names one (docs/deploy.md).

A report only reads, and reads a lot: on a replica it takes nothing from the primary that answers the residents.
While a report runs, the app context's `db.session` is a session on the replica's engine (the scoped session's
registry is per app context, so other requests keep theirs); afterwards the context gets its own session back.
The replica lags the primary by seconds: the reports show figures that old, never wrong ones.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from app.core.config import setting
from app.core.extensions import db

ENGINES = "linli_reports_replica"  # app.extensions key: the replica's engine per URL


@contextmanager
def reading() -> Iterator[None]:
    """Run the block's queries on the replica, when one is configured."""
    url = setting("REPORTS_DATABASE_URL")
    if not url:
        yield
        return
    registry = db.session.registry
    previous = registry() if registry.has() else None
    replica = Session(bind=_engine(url))
    registry.set(replica)
    try:
        yield
    finally:
        replica.close()
        if previous is None:
            registry.clear()
        else:
            registry.set(previous)


def _engine(url: str) -> Engine:
    engines = current_app.extensions.setdefault(ENGINES, {})
    if url not in engines:
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, as for DATABASE_URL
        engines[url] = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engines[url]
