"""Resolving the bot's sender id back to a conversation and its resident."""
from __future__ import annotations

from sqlalchemy import select

from app.core.errors import NotFound
from app.core.extensions import db
from app.models import Conversation


def conversation_by_sender(*, sender: str) -> Conversation:
    conversation = db.session.scalar(select(Conversation).where(Conversation.bot_sender == sender))
    if conversation is None:
        raise NotFound(f"no conversation for sender {sender!r}", code="unknown_sender")
    return conversation
