"""Health of the parts Linli depends on: the database, Redis and the bot."""
from __future__ import annotations

from sqlalchemy import text

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis


def check_database() -> None:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()


def check_redis() -> None:
    get_redis().ping()


def check_bot() -> None:
    if not transports.get().bot.status():
        raise ConnectionError("the bot does not answer")


def report() -> dict[str, str]:
    """Each dependency by name, "ok" or the error that made it fail."""
    checks = {
        "database": check_database,
        "redis": check_redis,
        "bot": check_bot,
    }
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure is a finding to report, not to raise
            if name == "database":
                db.session.rollback()
            results[name] = f"down: {type(exc).__name__}"
    return results
