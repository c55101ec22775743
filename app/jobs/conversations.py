"""Conversation jobs: late bot answers, queued once the database is back or handed to staff if lost."""
from __future__ import annotations

from app.jobs import requeue_failed
from app.jobs.periodic import every
from app.services import conversations


def queue_late_reply(turn: dict, messages: list[dict] | None, failure: str | None) -> None:
    conversations.queue_late_reply(turn=conversations.Turn(**turn), messages=messages, failure=failure)


@every(60, queue="outbound")
def hand_over_lost_late_answers() -> int:
    return conversations.hand_over_lost_late_answers()


@every(300, queue="outbound")
def requeue_late_replies() -> int:
    """A late answer whose retries ran out while the database stayed down: its message may carry no mark
    (the mark is a database write too), so hand_over_lost_late_answers would never see it. Redis still
    holds the answer; try again every 5 minutes until it is queued, for LATE_REPLY_KEPT."""
    return requeue_failed("outbound", queue_late_reply, max_age=conversations.LATE_REPLY_KEPT)
