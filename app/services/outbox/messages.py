"""The outbox: every outbound message is a row first, then a delivery job on the `outbound` queue.

A row may carry a logical subscribe-template key and its fields: delivery then sends it as a WeChat subscribe
message when the resident granted that template, else its body by 客服 or SMS (subscriptions.py)."""
from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, Conversation, OutboundMessage, Resident


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


def conversation_to_reach(*, resident_id: int) -> Conversation | None:
    """Where notices to a resident go: their preferred channel, else any channel they wrote from (None: nowhere).

    May commit a new conversation (conversation_for)."""
    resident = db.session.get(Resident, resident_id)
    try:
        return conversation_for(resident_id=resident_id, channel=resident.preferred_channel)
    except NotFound:
        return db.session.scalar(
            select(Conversation).where(Conversation.resident_id == resident_id).order_by(Conversation.id).limit(1))


def stage_message(*, conversation_id: int, body: str, kind: str = "reply", dedup_key: str | None = None,
                  ticket_id: int | None = None, template: str | None = None,
                  fields: dict | None = None) -> OutboundMessage:
    """Add an outbox row to the session without committing (for callers that commit it with their change).

    `template` ("booking_reminder") and `fields` let delivery send it as a WeChat subscribe message; `body` is
    still required: it is what goes by 客服 or SMS when the resident granted no subscribe message."""
    if not body or not body.strip():
        raise ValidationFailed("an outbound message needs a body", code="empty_message")
    if fields is not None and not isinstance(fields, dict):
        raise ValidationFailed("template fields must be a mapping", code="bad_template_fields")
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("no such conversation")
    last = db.session.scalar(
        select(func.max(OutboundMessage.sequence)).where(OutboundMessage.conversation_id == conversation_id)
    )
    row = OutboundMessage(
        conversation_id=conversation_id, channel=conversation.channel, to_address=conversation.address,
        body=body, kind=kind, dedup_key=dedup_key, ticket_id=ticket_id, sequence=(last or 0) + 1,
        template=template, template_fields=({str(k): str(v) for k, v in fields.items()} if fields else None),
    )
    db.session.add(row)
    return row


def dispatch(*, outbound_ids: list[int]) -> None:
    """Queue delivery of committed rows; a row whose job is lost is re-queued by the sweeper."""
    for outbound_id in outbound_ids:
        tasks.later("delivery.deliver", outbound_id=outbound_id, job_id=f"deliver-{outbound_id}")


def queue_message(*, conversation_id: int, body: str, kind: str = "reply", dedup_key: str | None = None,
                  ticket_id: int | None = None, template: str | None = None,
                  fields: dict | None = None) -> OutboundMessage | None:
    """Store and queue one message; None when a message with this dedup_key was already queued.

    With `template` and `fields` it goes as a WeChat subscribe message when granted (see stage_message)."""
    row = stage_message(conversation_id=conversation_id, body=body, kind=kind, dedup_key=dedup_key,
                        ticket_id=ticket_id, template=template, fields=fields)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if dedup_key is None:
            raise
        return None
    dispatch(outbound_ids=[row.id])
    return row
