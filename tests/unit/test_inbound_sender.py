"""The one-query sender lookup of the webhook path agrees with the ticket service about who takes a message."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core.extensions import db
from app.models import Message
from app.models.base import utcnow
from app.services.conversations import senders as inbound_sender
from app.services.tickets import lifecycle as tickets
from tests.factories import ChannelIdentityFactory, ConversationFactory, StaffFactory


@pytest.fixture
def conversation(session):
    conversation = ConversationFactory()
    ChannelIdentityFactory(resident=conversation.resident, channel="wechat", external_id=conversation.address)
    session.flush()
    return conversation


def _open(conversation):
    return tickets.open_ticket(street_id=conversation.resident.community.street_id, source="bot", subject="求助",
                               conversation_id=conversation.id, resident_id=conversation.resident_id)


def _resolved(conversation, *, days_ago: float, rated: bool = False, closed: bool = False):
    staff = StaffFactory(street=conversation.resident.community.street)
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id, now=utcnow() - timedelta(days=days_ago))
    if rated:
        ticket.csat_score = 4
    if closed:
        ticket.status = "closed"
    return ticket


def _lookup(conversation):
    return inbound_sender.sender_for(db.session.connection(), channel="wechat", address=conversation.address)


def _service_would_act(conversation, text: str) -> bool:
    """What the ticket service does with a message: take it for staff, or store it as a rating."""
    message = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                      text=text)
    db.session.add(message)
    db.session.flush()
    if tickets.capture_csat(conversation_id=conversation.id, text=text):
        return True
    return tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id) is not None


def test_a_known_sender_is_found_with_their_conversation(session, conversation):
    found = _lookup(conversation)
    assert (found.resident_id, found.conversation_id, found.bot_sender) == (
        conversation.resident_id, conversation.id, conversation.bot_sender)
    assert found.ticket_may_claim is False


def test_a_new_sender_gets_a_resident_and_a_conversation(session):
    found = inbound_sender.sender_for(db.session.connection(), channel="sms", address="+8613800000001")
    again = inbound_sender.sender_for(db.session.connection(), channel="sms", address="+8613800000001")
    assert found.resident_id == again.resident_id and found.conversation_id == again.conversation_id
    assert found.ticket_may_claim is False


def _store(external_id: str, address: str, *, channel: str = "wechat", text: str = "社保卡怎么补办"):
    return inbound_sender.store(db.session.connection(), channel=channel, address=address, external_id=external_id,
                                kind="text", text=text)


def test_a_known_senders_message_is_kept_with_the_lookup(session, conversation):
    sender, message_id = _store("m-1", conversation.address)
    assert (sender.resident_id, sender.conversation_id) == (conversation.resident_id, conversation.id)
    message = db.session.get(Message, message_id)
    assert (message.conversation_id, message.channel, message.direction, message.author, message.external_id,
            message.kind, message.text) == (conversation.id, "wechat", "in", "resident", "m-1", "text", "社保卡怎么补办")
    assert message.created_at is not None


def test_a_new_senders_message_is_kept_after_they_are_created(session):
    sender, message_id = _store("m-2", "+8613800000002", channel="sms")
    message = db.session.get(Message, message_id)
    assert message.conversation_id == sender.conversation_id and message.channel == "sms"
    assert _store("m-3", "+8613800000002", channel="sms")[0].conversation_id == sender.conversation_id


def test_a_message_stored_twice_is_refused(session, conversation):
    _store("m-4", conversation.address)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        _store("m-4", conversation.address)
    assert db.session.scalar(select(func.count(Message.id)).where(Message.external_id == "m-4")) == 1


@pytest.mark.parametrize("state, text, claims", [
    ("open", "还没人来修", True),
    ("pending", "照片发您了", True),
    ("resolved 6 days ago", "又坏了", True),
    ("resolved 6 days ago, rating asked", "5", True),
    ("resolved 8 days ago, rating asked", "5", False),  # the question lapsed: "5" may answer the bot's options
    ("resolved 8 days ago, rated", "新问题", False),
    ("closed, rated", "新问题", False),
    ("closed, rating asked", "4", False),
])
def test_the_flag_is_set_whenever_a_ticket_would_take_the_message(session, conversation, state, text, claims):
    if state == "open":
        _open(conversation)
    elif state == "pending":
        tickets.set_status(ticket_id=_open(conversation).id, status="pending",
                           staff_id=StaffFactory(street=conversation.resident.community.street).id)
    elif state == "resolved 6 days ago":
        _resolved(conversation, days_ago=6, rated=True)
    elif state == "resolved 6 days ago, rating asked":
        _resolved(conversation, days_ago=6)
    elif state == "resolved 8 days ago, rating asked":
        _resolved(conversation, days_ago=8)
    elif state == "resolved 8 days ago, rated":
        _resolved(conversation, days_ago=8, rated=True)
    elif state == "closed, rated":
        _resolved(conversation, days_ago=9, rated=True, closed=True)
    elif state == "closed, rating asked":
        _resolved(conversation, days_ago=9, closed=True)
    session.flush()

    assert _lookup(conversation).ticket_may_claim is claims
    assert _service_would_act(conversation, text) is claims
