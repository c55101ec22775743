"""Handing a conversation over from the bot to a person."""
from __future__ import annotations

from app.core.extensions import db
from app.models import Resident, Ticket
from app.services import residents, tickets
from app.services.residents import conversation_by_sender

SUBJECTS = {"handoff": "居民要求人工服务", "fallback": "机器人连续未能理解", "complaint": "居民投诉"}


def hand_over(*, sender: str, reason: str, text: str = "") -> Ticket:
    """Open (or reuse) the conversation's ticket; from now on the conversation is in human mode."""
    conversation = conversation_by_sender(sender=sender)
    resident = db.session.get(Resident, conversation.resident_id)
    street_id = residents.street_of(resident)
    subject = SUBJECTS[reason] + (f"：{text[:60]}" if text else "")
    return tickets.open_ticket(
        street_id=street_id, source="bot", subject=subject, priority="high" if reason == "complaint" else "normal",
        category=reason, conversation_id=conversation.id, resident_id=resident.id, body=text,
    )

