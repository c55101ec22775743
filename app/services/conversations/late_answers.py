"""Bot answers that came after the caller's budget: queued in the outbox when they come, retried while the
database is down, and handed to a person when the process that waited for them died."""
from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import asdict
from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.extensions import db
from app.models.base import utcnow
from app.services import outbox, reports
from app.services.conversations.dedup import InboundGuard
from app.services.conversations.replies import (
    APOLOGY,
    CONVERSATIONS,
    INSERT_MESSAGES,
    MARK_LATE_ANSWER,
    MESSAGES,
    Outcome,
    Turn,
    answer_of,
    dedup_key,
    deliver,
    hand_to_staff,
    replies_of,
    transcript,
)

log = logging.getLogger(__name__)

LATE_RETRY = [5, 10, 20, 40, 80, 160]  # seconds between tries to queue a late answer while the database is down
# When a late answer not queued by then counts as lost (a process died): the bot's timeout and LATE_RETRY fit in it.
LATE_ANSWER_GRACE = timedelta(minutes=10)
# How long a late answer waiting in Redis for the database is tried again (conversations/jobs.py).
LATE_REPLY_KEPT = timedelta(days=1)


def finish_late(app, turn: Turn, future: Future, guard: InboundGuard) -> None:
    """The bot answered after the caller's budget: queue its replies in the outbox, and end the turn's guard."""
    messages, failure = answer_of(future.result)
    with app.app_context():
        if not guard.keep_if_mine():
            # A retry took this process for dead (its liveness key lapsed) and the turn over: that retry answers.
            # The message's mark stays until it does, so a turn the retry failed too still reaches staff.
            log.warning("message %s was taken over by a retry; its late answer here is dropped", turn.message_id)
            return
        try:
            outcome = _queue_late_answer(turn, messages, failure)
        except Exception:
            # The database is down: the answer waits in Redis for it (the resident heard "success" already).
            log.exception("late bot reply for message %s could not be queued; retrying", turn.message_id)
            queued = tasks.later("conversations.queue_late_reply", turn=asdict(turn), messages=messages,
                                 failure=failure, job_id=f"late-reply-{turn.message_id}",
                                 retry=Retry(max=6, interval=LATE_RETRY))
            # Without Redis either, a retry of the message (if the channel sends one) answers it.
            guard.finish("outbox" if queued else "failed")
            return
        guard.finish(outcome.guard_state, classify=turn.message_id if outcome.classify else None)


def queue_late_reply(*, turn: Turn, messages: list[dict] | None, failure: str | None) -> None:
    """The retry of a late answer that could not be queued; a repeat is harmless (the outbox rows' dedup keys)."""
    if _queue_late_answer(turn, messages, failure).classify:
        reports.classify_later(message_id=turn.message_id)


def _queue_late_answer(turn: Turn, messages: list[dict] | None, failure: str | None) -> Outcome:
    outcome = deliver(turn, *replies_of(turn, messages, failure), author="bot", passive=False)
    mark_answer_queued(turn)
    return outcome


def hand_over_lost_late_answers(*, now: datetime | None = None, limit: int = 100) -> int:
    """Messages whose late answer never got queued (the process died waiting for the bot): a person answers.

    Returns how many messages were handed over.
    """
    now = now or utcnow()
    overdue = db.session.execute(
        select(MESSAGES.c.id, MESSAGES.c.channel, MESSAGES.c.text, MESSAGES.c.kind,
               CONVERSATIONS.c.id.label("conversation_id"), CONVERSATIONS.c.resident_id,
               CONVERSATIONS.c.bot_sender, CONVERSATIONS.c.address)
        .join_from(MESSAGES, CONVERSATIONS, CONVERSATIONS.c.id == MESSAGES.c.conversation_id)
        .where(MESSAGES.c.late_answer_due_at < now).order_by(MESSAGES.c.id).limit(limit)
    ).all()
    handed = 0
    for row in overdue:
        turn = Turn(channel=row.channel, resident_id=row.resident_id, conversation_id=row.conversation_id,
                    message_id=row.id, bot_sender=row.bot_sender, address=row.address, text=row.text, kind=row.kind)
        handed += _hand_over_lost_answer(turn)
        mark_answer_queued(turn)
    return handed


def _hand_over_lost_answer(turn: Turn) -> bool:
    """The apology and the ticket for a lost late answer, kept together or not at all.

    The apology takes the first reply's dedup key before the ticket is opened, in the same transaction. So a
    late answer queued after all, earlier or in this very moment by another process, wins the key, and then
    neither the apology nor a ticket for an answered message is kept.
    """
    db.session.execute(INSERT_MESSAGES, transcript(turn, [APOLOGY], author="system"))
    apology = outbox.stage_message(conversation_id=turn.conversation_id, body=APOLOGY, dedup_key=dedup_key(turn, 0))
    try:
        db.session.flush()  # on PostgreSQL, waits for a concurrent insert of the same key to end
    except IntegrityError:
        db.session.rollback()
        return False
    log.error("the late answer to message %s was lost; handing it to staff", turn.message_id)
    hand_to_staff(turn, reason="the bot's late answer was lost")
    db.session.commit()
    outbox.dispatch(outbound_ids=[apology.id])
    return True


def mark_answer_queued(turn: Turn) -> None:
    db.session.execute(MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": None})
    db.session.commit()
