"""Accepted but not resolved: an accepted alert nobody closes within HELP_REALERT_MINUTES rings again."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from app.core.config import setting
from app.core.extensions import db
from app.models import HelpAlert
from app.models.base import utcnow
from app.services import help as help_service

log = logging.getLogger(__name__)


def sweep(*, now: datetime | None = None) -> int:
    """Reopen every alert accepted longer ago than the limit: the acceptor is called first, then the chain."""
    now = now or utcnow()
    limit = now - timedelta(minutes=setting("HELP_REALERT_MINUTES"))
    stale = db.session.scalars(
        select(HelpAlert.id).where(HelpAlert.status == "accepted", HelpAlert.accepted_at <= limit)
        .order_by(HelpAlert.accepted_at).limit(500)
    ).all()
    db.session.rollback()
    reopened = sum(1 for alert_id in stale
                   if help_service.realert_unresolved(alert_id=alert_id, accepted_before=limit, now=now))
    if reopened:
        log.info("re-alerts: %s accepted alerts left open rang again", reopened)
    return reopened
