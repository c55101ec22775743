"""What the bot understood of each resident message, kept for the team lead's reports (fallbacks, topics)."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from redis.client import Pipeline
from redis.exceptions import LockError, RedisError
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import aliased

from app.core import transports
from app.core.config import setting
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.models import Message
from app.models.base import utcnow
from app.services.reports import rollup
from integrations.rasa import BotUnavailable

log = logging.getLogger(__name__)

PENDING_KEY = "linli:intents:pending"
DRAIN_LOCK = "linli:intents:draining"
URGENT_QUEUES = ("escalation", "outbound")
# The sweep that repairs a lost queue (sweep_unclassified): what it queued already, kept as long as it looks back, so
# a message the NLU cannot classify is asked again only after Redis forgot it.
SWEPT_KEY = "linli:intents:swept"
SWEEP_AFTER = timedelta(minutes=2)  # the queue's own path had its chance: classify_pending drains every 5 s
SWEEP_BACK = timedelta(days=1)
SWEEP_BATCH = 500
SWEEP_MAX_PENDING = 10_000  # a queue this long is one the bot is behind on: this sweep waits for the next


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


def sweep_unclassified(*, now: datetime | None = None) -> int:
    """Queue again the messages the bot answered whose intent is still unrecorded; returns how many it queued.

    The queue lives in Redis only: Redis restarted empty (or an RPUSH that failed) leaves answered messages
    unclassified, and their intent missing from the reports (docs/deploy.md, "When Redis restarts empty"). The
    database knows them: a resident's message of the last day, older than SWEEP_AFTER, intent NULL, whose next row
    in its conversation is the bot's reply (staff-handled messages have none and stay unclassified, as on the live
    path). Not already waiting in the queue, and queued by this sweep at most once a day (SWEPT_KEY), so a text the
    NLU cannot classify is not asked every period. A bot that failed also writes its apology as the bot's, so this
    classifies those messages too, which the live path leaves out: a bot outage's messages, once the bot is back.
    """
    now = now or utcnow()
    redis = get_redis()
    if redis.llen(PENDING_KEY) > SWEEP_MAX_PENDING:
        return 0
    waiting = {int(i) for i in redis.lrange(PENDING_KEY, 0, -1)}
    reply, later_in = aliased(Message), aliased(Message)
    answered_by_bot = exists().where(
        reply.conversation_id == Message.conversation_id, reply.id > Message.id, reply.direction == "out",
        reply.author == "bot",
        ~exists().where(and_(later_in.conversation_id == Message.conversation_id, later_in.direction == "in",
                             later_in.id > Message.id, later_in.id < reply.id)).correlate_except(later_in))
    unclassified = select(Message.id).where(
        Message.author == "resident", Message.direction == "in", Message.intent.is_(None), Message.text != "",
        Message.created_at >= now - SWEEP_BACK, Message.created_at < now - SWEEP_AFTER, answered_by_bot)
    fresh: list[int] = []
    after = 0
    # Pages by id, so ids swept already (a text the NLU cannot classify) never hide the ones after them.
    while len(fresh) < SWEEP_BATCH:
        page = db.session.scalars(unclassified.where(Message.id > after).order_by(Message.id).limit(SWEEP_BATCH)).all()
        if not page:
            break
        after = page[-1]
        page = [i for i in page if i not in waiting]
        if page:  # SWEPT_KEY: a sorted set of ids by when this sweep queued them
            fresh += [i for i, seen in zip(page, redis.zmscore(SWEPT_KEY, page)) if seen is None]
    db.session.rollback()  # reads only: end the transaction
    fresh = fresh[:SWEEP_BATCH]
    stamp = now.timestamp()
    pipe = redis.pipeline()
    pipe.zremrangebyscore(SWEPT_KEY, "-inf", stamp - SWEEP_BACK.total_seconds())
    if fresh:
        pipe.zadd(SWEPT_KEY, {str(i): stamp for i in fresh})
        pipe.rpush(PENDING_KEY, *fresh)
    pipe.execute()
    if fresh:
        log.info("%s answered messages had lost their place in the intent queue: queued again", len(fresh))
    return len(fresh)
