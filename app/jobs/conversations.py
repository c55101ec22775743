"""Conversation jobs: a late bot answer that could not be queued while the database was down."""
from __future__ import annotations

from app.services import conversations


def queue_late_reply(turn: dict, messages: list[dict] | None, failure: str | None) -> None:
    conversations.queue_late_reply(turn=conversations.Turn(**turn), messages=messages, failure=failure)
