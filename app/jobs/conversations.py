"""Conversation jobs: late bot answers, queued once the database is back or handed to staff if lost."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import conversations


def queue_late_reply(turn: dict, messages: list[dict] | None, failure: str | None) -> None:
    conversations.queue_late_reply(turn=conversations.Turn(**turn), messages=messages, failure=failure)


@every(60, queue="outbound")
def hand_over_lost_late_answers() -> int:
    return conversations.hand_over_lost_late_answers()
