"""Who wrote an inbound message, in one query: the resident, their conversation on the channel, and
whether a ticket may claim the message; and keeping the message in that same round trip.

This runs once per webhook request, so it is one statement of plain columns instead of loading the
resident, the conversation and each kind of ticket separately, then inserting (issue 3's webhook overhead).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, insert, literal, or_, select, true

from app.models import ChannelIdentity, Conversation, Message, Resident, Ticket
from app.models.base import utcnow
from app.services import outbox, residents, tickets


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


def store(conn: Connection, *, channel: str, address: str, external_id: str, kind: str, text: str,
          answer_due: datetime | None = None) -> tuple[InboundSender, int]:
    """Keep a resident's message on `conn` (an inbound_db connection); its sender and the message's id.
    `answer_due`: the message's late-answer mark, written with it (late_answers.hand_over_lost_late_answers).

    Raises IntegrityError when a message with this external id is stored already.
    """
    message = {"channel": channel, "external_id": external_id, "kind": kind[:20], "text": text,
               "late_answer_due_at": answer_due}
    if conn.dialect.name == "postgresql":
        # The usual case, a known sender, in one statement: the lookup, and the insert reading from it.
        row = conn.execute(_LOOKUP_AND_INSERT, {**message, "address": address,
                                                "resolved_since": utcnow() - tickets.REOPEN_WINDOW}).one_or_none()
        if row is not None and row.message_id is not None:
            return InboundSender(*row[:-1]), row.message_id
    sender = sender_for(conn, channel=channel, address=address)
    return sender, conn.execute(_INSERT, {**message, "conversation_id": sender.conversation_id}).scalar_one()


def sender_for(conn: Connection, *, channel: str, address: str) -> InboundSender:
    """The sender of a message on `channel` from `address`, read on `conn`; the resident and conversation
    are created (and committed, through the ORM session) on their first message."""
    row = conn.execute(_LOOKUP, {"channel": channel, "address": address,
                                 "resolved_since": utcnow() - tickets.REOPEN_WINDOW}).one_or_none()
    if row is not None and row.conversation_id is not None:
        return InboundSender(*row)
    resident = residents.resident_for(channel=channel, address=address)
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
        # Literal values rather than an expanding IN, which would re-render the SQL on every execution.
        or_(_tickets.c.status.in_([literal(status) for status in tickets.OPEN_STATUSES]),
            _tickets.c.resolved_at >= bindparam("resolved_since")),
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

_messages = Message.__table__
_INBOUND = {"direction": literal("in"), "author": literal("resident"), "channel": bindparam("channel"),
            "external_id": bindparam("external_id"), "kind": bindparam("kind"), "text": bindparam("text"),
            "late_answer_due_at": bindparam("late_answer_due_at", type_=_messages.c.late_answer_due_at.type)}
_INSERT = insert(_messages).values(conversation_id=bindparam("conversation_id"), **_INBOUND).returning(_messages.c.id)
# PostgreSQL only (SQLite has no INSERT inside WITH): the insert takes the conversation from the lookup, and
# inserts nothing when the sender is new; created_at comes from the column's default, as in _INSERT.
_sender = _LOOKUP.cte("sender")
_stored = (insert(_messages)
           .from_select(["conversation_id", *_INBOUND],
                        select(_sender.c.conversation_id, *_INBOUND.values())
                        .where(_sender.c.conversation_id.is_not(None)))
           .returning(_messages.c.id).cte("stored"))
_LOOKUP_AND_INSERT = select(_sender, _stored.c.id.label("message_id")).select_from(
    _sender.outerjoin(_stored, true()))
