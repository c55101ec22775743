"""Who wrote an inbound message, in one query: the resident, their conversation on the channel, and
whether a ticket may claim the message.

This runs once per webhook request, so it is one round trip of plain columns instead of loading the
resident, the conversation and each kind of ticket separately (issue 3's webhook overhead).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, or_, select

from app.models import ChannelIdentity, Conversation, Resident, Ticket
from app.models.base import utcnow
from app.services import identities, outbox, tickets


@dataclass(frozen=True)
class InboundSender:
    resident_id: int
    sms_opted_out: bool
    conversation_id: int
    bot_sender: str
    last_inbound_at: datetime | None
    # False only when no ticket could take the message (none open, none resolved within the reopen
    # window, where its rating question lives too): then routing to staff and rating capture need no queries.
    ticket_may_claim: bool


def sender_for(conn: Connection, *, channel: str, address: str) -> InboundSender:
    """The sender of a message on `channel` from `address`, read on `conn`; the resident and conversation
    are created (and committed, through the ORM session) on their first message."""
    row = conn.execute(_LOOKUP, {"channel": channel, "address": address,
                                 "resolved_since": utcnow() - tickets.REOPEN_WINDOW}).one_or_none()
    if row is not None and row.conversation_id is not None:
        return InboundSender(*row)
    resident = identities.resident_for(channel=channel, address=address)
    conversation = outbox.conversation_for(resident_id=resident.id, channel=channel)
    may_claim = conn.execute(select(_claiming_ticket(conversation.id)),
                             {"resolved_since": utcnow() - tickets.REOPEN_WINDOW}).scalar()
    return InboundSender(resident_id=resident.id, sms_opted_out=bool(resident.sms_opted_out),
                         conversation_id=conversation.id, bot_sender=conversation.bot_sender,
                         last_inbound_at=conversation.last_inbound_at, ticket_may_claim=bool(may_claim))


def _claiming_ticket(conversation_id):
    """Tickets that route_resident_message or capture_csat could act on (a superset is harmless)."""
    # A resolved ticket within the reopen window covers both reopening and its rating question.
    return exists().where(
        _tickets.c.conversation_id == conversation_id,
        or_(_tickets.c.status.in_(tickets.OPEN_STATUSES), _tickets.c.resolved_at >= bindparam("resolved_since")),
    )


# Built once from the tables, not the mapped classes: composing a statement and the ORM's handling of it
# would cost more CPU than running this one.
_identities, _residents = ChannelIdentity.__table__, Resident.__table__
_conversations, _tickets = Conversation.__table__, Ticket.__table__
_LOOKUP = (
    select(_identities.c.resident_id, _residents.c.sms_opted_out, _conversations.c.id.label("conversation_id"),
           _conversations.c.bot_sender, _conversations.c.last_inbound_at,
           _claiming_ticket(_conversations.c.id).label("ticket_may_claim"))
    .select_from(_identities.join(_residents, _residents.c.id == _identities.c.resident_id)
                 .outerjoin(_conversations, and_(_conversations.c.resident_id == _identities.c.resident_id,
                                                 _conversations.c.channel == _identities.c.channel)))
    .where(_identities.c.channel == bindparam("channel"), _identities.c.external_id == bindparam("address"))
)
