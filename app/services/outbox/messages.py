"""The outbox: every outbound message is a row first, then a delivery job on the `outbound` queue."""
from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, Conversation, OutboundMessage


def conversation_for(*, resident_id: int, channel: str) -> Conversation:
    """The resident's conversation on a channel, created on first use from their channel identity."""
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.resident_id == resident_id, Conversation.channel == channel)
    )
    if conversation:
        return conversation
    address = db.session.scalar(
        select(ChannelIdentity.external_id).where(
            ChannelIdentity.resident_id == resident_id, ChannelIdentity.channel == channel
        )
    )
    if address is None:
        raise NotFound(f"resident has no {channel} identity", code="no_channel_identity")
    conversation = Conversation(resident_id=resident_id, channel=channel, address=address,
                                bot_sender=f"{channel}-{uuid.uuid4().hex[:20]}")
    db.session.add(conversation)
    try:
        db.session.commit()
    except IntegrityError:  # created by a concurrent request a moment ago
        db.session.rollback()
        return conversation_for(resident_id=resident_id, channel=channel)
    return conversation


def stage_message(*, conversation_id: int, body: str, kind: str = "reply", dedup_key: str | None = None,
                  ticket_id: int | None = None) -> OutboundMessage:
    """Add an outbox row to the session without committing (for callers that commit it with their change)."""
    if not body or not body.strip():
        raise ValidationFailed("an outbound message needs a body", code="empty_message")
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("no such conversation")
    last = db.session.scalar(
        select(func.max(OutboundMessage.sequence)).where(OutboundMessage.conversation_id == conversation_id)
    )
    row = OutboundMessage(
        conversation_id=conversation_id, channel=conversation.channel, to_address=conversation.address,
        body=body, kind=kind, dedup_key=dedup_key, ticket_id=ticket_id, sequence=(last or 0) + 1,
    )
    db.session.add(row)
    return row


def dispatch(*, outbound_ids: list[int]) -> None:
    """Queue delivery of committed rows; a row whose job is lost is re-queued by the sweeper."""
    for outbound_id in outbound_ids:
        tasks.later("delivery.deliver", outbound_id=outbound_id, job_id=f"deliver-{outbound_id}")


def queue_message(*, conversation_id: int, body: str, kind: str = "reply", dedup_key: str | None = None,
                  ticket_id: int | None = None) -> OutboundMessage | None:
    """Store and queue one message; None when a message with this dedup_key was already queued."""
    row = stage_message(conversation_id=conversation_id, body=body, kind=kind, dedup_key=dedup_key,
                        ticket_id=ticket_id)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if dedup_key is None:
            raise
        return None
    dispatch(outbound_ids=[row.id])
    return row
