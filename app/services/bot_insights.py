"""What the bot understood of each resident message, kept for the team lead's reports (fallbacks, topics)."""
from __future__ import annotations

import logging
import time

from flask import current_app
from redis.exceptions import RedisError

from app.extensions import db
from app.models import Message
from app.redis_client import get_redis
from app.services import transports
from app.services.reports import rollup
from integrations.rasa import BotUnavailable

log = logging.getLogger(__name__)

PENDING_KEY = "linli:intents:pending"


def classify_later(*, message_id: int) -> None:
    """Queue the message for intent recording, off the reply's path (the REST channel's answer does not
    carry the intent): one RPUSH here, and the `classify_pending` job asks the bot's NLU in batches.

    The intent only feeds the reports, so a Redis failure leaves the message unclassified rather than
    costing the resident's turn anything.
    """
    try:
        get_redis().rpush(PENDING_KEY, message_id)
    except RedisError as exc:
        log.warning("message %s will not be classified: %s", message_id, exc)


def classify_pending(*, limit: int = 200, budget: float = 8.0) -> int:
    """Record the intents of queued messages until the queue is empty or `budget` seconds have passed."""
    redis, done, deadline = get_redis(), 0, time.monotonic() + budget
    while time.monotonic() < deadline:
        ids = redis.lpop(PENDING_KEY, limit) or []
        for n, raw in enumerate(ids):
            try:
                record_intent(message_id=int(raw))
                done += 1
            except BotUnavailable as exc:  # the bot is down: keep the rest, in order, for the next run
                db.session.rollback()
                redis.lpush(PENDING_KEY, *reversed(ids[n:]))
                log.warning("intent recording paused, %s messages wait: %s", len(ids) - n, exc)
                return done
        if len(ids) < limit:
            break
    return done


def record_intent(*, message_id: int) -> str | None:
    """Ask the bot's NLU for the message's intent and store it (nlu_fallback marks an unanswered question)."""
    message = db.session.get(Message, message_id)
    if message is None or message.intent or not message.text:
        return message.intent if message else None
    timeout = float(current_app.config.get("BOT_TIMEOUT", 10.0))
    message.intent = (transports.get().bot.parse(message.text, timeout) or "")[:60] or None
    rollup.message_classified(message=message)  # a late intent for a day already rolled up: recompute it
    db.session.commit()
    return message.intent
