"""Conversation jobs: late bot answers, queued once the database is back or handed to staff if lost."""
from __future__ import annotations

from datetime import timedelta

from app.core.tasks import job, requeue_failed
from app.services.conversations import inbound, late_answers, orphans


@job("conversations.receive")
def receive(channel: str, external_id: str, address: str, text: str) -> None:
    """A message a channel handed over without waiting for its answer (deferred.py)."""
    inbound.receive(channel=channel, external_id=external_id, address=address, text=text)


@job("conversations.requeue_deferred_messages", every=900)
def requeue_deferred_messages() -> int:
    """A deferred message whose retries ran out while the database stayed down: Redis holds its only copy, so it
    is tried again every 15 minutes for two days (receive() answers it once however often it runs)."""
    return requeue_failed("conversations.receive", max_age=timedelta(days=2))


@job("conversations.queue_late_reply", queue="outbound")
def queue_late_reply(turn: dict, messages: list[dict] | None, failure: str | None) -> None:
    late_answers.queue_late_reply(turn=late_answers.Turn(**turn), messages=messages, failure=failure)


@job("conversations.take_over_orphaned_turns", every=5)
def take_over_orphaned_turns() -> int:
    return orphans.take_over_orphaned_turns()


@job("conversations.hand_over_lost_late_answers", queue="outbound", every=60)
def hand_over_lost_late_answers() -> int:
    return late_answers.hand_over_lost_late_answers()


@job("conversations.requeue_late_replies", queue="outbound", every=300)
def requeue_late_replies() -> int:
    """A late answer whose retries ran out while the database stayed down: its message may carry no mark
    (the mark is a database write too), so hand_over_lost_late_answers would never see it. Redis still
    holds the answer; try again every 5 minutes until it is queued, for LATE_REPLY_KEPT."""
    return requeue_failed("conversations.queue_late_reply", max_age=late_answers.LATE_REPLY_KEPT)
