"""Handing a conversation over from the bot to a person."""
from __future__ import annotations

from app.extensions import db
from app.models import Community, Resident, Street, Ticket
from app.services import tickets
from app.services.senders import conversation_by_sender

SUBJECTS = {"handoff": "居民要求人工服务", "fallback": "机器人连续未能理解", "complaint": "居民投诉"}


def hand_over(*, sender: str, reason: str, text: str = "") -> Ticket:
    """Open (or reuse) the conversation's ticket; from now on the conversation is in human mode."""
    conversation = conversation_by_sender(sender=sender)
    resident = db.session.get(Resident, conversation.resident_id)
    street_id = _street_of(resident)
    subject = SUBJECTS[reason] + (f"：{text[:60]}" if text else "")
    return tickets.open_ticket(
        street_id=street_id, source="bot", subject=subject, priority="high" if reason == "complaint" else "normal",
        category=reason, conversation_id=conversation.id, resident_id=resident.id, body=text,
    )


def _street_of(resident: Resident) -> int:
    if resident.community_id is not None:
        return db.session.get(Community, resident.community_id).street_id
    # A resident who wrote in before registering a community belongs to the first street served.
    return db.session.query(Street.id).order_by(Street.id).limit(1).scalar()
