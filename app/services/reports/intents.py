"""What the bot understood of each resident message, kept for the team lead's reports (fallbacks, topics)."""
from __future__ import annotations

import logging
import time

from redis.client import Pipeline
from redis.exceptions import LockError, RedisError

from app.core import transports
from app.core.config import setting
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.models import Message
from app.services.reports import rollup
from integrations.rasa import BotUnavailable

log = logging.getLogger(__name__)

PENDING_KEY = "linli:intents:pending"
DRAIN_LOCK = "linli:intents:draining"
URGENT_QUEUES = ("escalation", "outbound")


def classify_later(*, message_id: int, pipeline: Pipeline | None = None) -> None:
    """Queue the message for intent recording, off the reply's path (the REST channel's answer does not
    carry the intent): one RPUSH here, and the `classify_pending` job asks the bot's NLU, oldest first.
    With `pipeline`, the RPUSH joins it and the caller executes it (and handles its errors).

    The intent only feeds the reports, so a Redis failure leaves the message unclassified rather than
    costing the resident's turn anything.
    """
    if pipeline is not None:
        pipeline.rpush(PENDING_KEY, message_id)
        return
    try:
        get_redis().rpush(PENDING_KEY, message_id)
    except RedisError as exc:
        log.warning("message %s will not be classified: %s", message_id, exc)


def classify_pending(*, budget: float = 4.0) -> int:
    """Record the intents of queued messages, oldest first, until the queue is empty or `budget` seconds
    have passed (less than the job's period, so the worker is soon free for alerts and replies).

    It stops early when an alert or a reply is queued (see _urgent_work_waiting). One drain at a time, under a
    Redis lock. An id leaves the queue only once its message is classified or
    found unclassifiable, so a crash or a database error keeps it for the next run; while the bot is down
    the whole queue waits, in order.
    """
    redis = get_redis()
    lock = redis.lock(DRAIN_LOCK, timeout=budget + 60, blocking=False)
    if not lock.acquire():
        return 0
    done, deadline = 0, time.monotonic() + budget
    try:
        while time.monotonic() < deadline and not _urgent_work_waiting():
            head = redis.lindex(PENDING_KEY, 0)
            if head is None:
                break
            try:
                record_intent(message_id=int(head))
                done += 1
            except BotUnavailable as exc:
                db.session.rollback()
                if not transports.get().bot.status():
                    log.warning("the bot is down: %s messages wait for their intent", redis.llen(PENDING_KEY))
                    break
                # The bot is up but refuses this text: one message must not hold up all the others.
                log.warning("message %s left unclassified: %s", int(head), exc)
            redis.lpop(PENDING_KEY)
    finally:
        try:
            lock.release()
        except LockError:  # held past its timeout; the next drain may already have it
            pass
    return done


def _urgent_work_waiting() -> bool:
    """A help alert's next call or a resident's reply is queued: the worker must get to it first.

    The worker takes its queues in priority order, but only between jobs; without this a drain would hold
    an alert's first call for up to its whole budget.
    """
    return any(get_queue(name).count for name in URGENT_QUEUES)


def record_intent(*, message_id: int) -> str | None:
    """Ask the bot's NLU for the message's intent and store it (nlu_fallback marks an unanswered question)."""
    message = db.session.get(Message, message_id)
    if message is None or message.intent or not message.text:
        return message.intent if message else None
    timeout = setting("BOT_TIMEOUT")
    message.intent = (transports.get().bot.parse(message.text, timeout) or "")[:60] or None
    rollup.message_classified(message=message)  # a late intent for a day already rolled up: recompute it
    db.session.commit()
    return message.intent
