"""Turns whose web process died while it waited for the bot, taken over by a worker instead of a retry.

A WeChat delivery that outlived its budget answered "success" and waits for the bot's late answer; an SMS is never
retried by Twilio. Either way no retry comes if that process is killed (kill -9, OOM, a lost host), and before this
the message waited for hand_over_lost_late_answers: an apology and a ticket after LATE_ANSWER_GRACE. Now, once the
process's liveness key has lapsed, a worker takes the turn over as a retry would (inbound.receive: the compare-and-set
on the claim lets one taker through) and the bot's answer goes by the outbox within seconds. The late-answer sweep
stays the last resort (the bot down, Redis restarted empty: no claim names a process).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import select

from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models.base import utcnow
from app.services.conversations import inbound
from app.services.conversations.dedup import RUNNING, InboundGuard
from app.services.conversations.liveness import LIVENESS_TTL, alive_key
from app.services.conversations.replies import CONVERSATIONS, MESSAGES

log = logging.getLogger(__name__)


def take_over_orphaned_turns(*, now: datetime | None = None, limit: int = 50) -> int:
    """Answer the marked, unanswered messages whose claim names a dead process; returns how many were taken."""
    now = now or utcnow()
    waiting = db.session.execute(
        select(MESSAGES.c.channel, MESSAGES.c.external_id, MESSAGES.c.text, MESSAGES.c.kind, CONVERSATIONS.c.address)
        .join_from(MESSAGES, CONVERSATIONS, CONVERSATIONS.c.id == MESSAGES.c.conversation_id)
        .where(MESSAGES.c.late_answer_due_at > now,  # an overdue one is the late-answer sweep's
               MESSAGES.c.created_at < now - timedelta(seconds=LIVENESS_TTL))
        .order_by(MESSAGES.c.id).limit(limit)
    ).all()
    db.session.rollback()  # no transaction held while the bot is asked
    taken = 0
    for row in waiting:
        if not _owner_dead(row.channel, row.external_id):
            continue
        outcome = inbound.receive(channel=row.channel, external_id=row.external_id, address=row.address,
                                  text=row.text or "", kind=row.kind)
        if not outcome.duplicate:
            log.warning("took over the %s turn of message %s: its web process died waiting for the bot",
                        row.channel, row.external_id)
            taken += 1
    return taken


def _owner_dead(channel: str, external_id: str) -> bool:
    """The claim names a process whose liveness key is gone. Only then: with no claim (Redis restarted empty) a
    taker's own fresh claim could end a live owner's turn, whose late answer would then never be queued."""
    redis = get_redis()
    try:
        state = (redis.get(InboundGuard(channel, external_id).key) or b"").decode()
        owner = state[len(RUNNING) + 1:] if state.startswith(f"{RUNNING}:") else ""
        return bool(owner) and not redis.exists(alive_key(owner))
    except RedisError:
        return False
