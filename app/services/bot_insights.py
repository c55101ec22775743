"""What the bot understood of each resident message, kept for the team lead's reports (fallbacks, topics)."""
from __future__ import annotations

from flask import current_app

from app.extensions import db
from app.jobs import enqueue
from app.models import Message
from app.services import transports
from app.services.reports import rollup


def classify_later(*, message_id: int) -> None:
    """Record the intent off the reply's path: the REST channel's answer does not carry it."""
    from app.jobs.bot import record_intent

    enqueue("default", record_intent, message_id, job_id=f"intent-{message_id}")


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
