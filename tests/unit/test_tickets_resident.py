"""The resident's side of a ticket: messages in human mode, reopening, and the 1-5 rating."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import Message, TicketEvent
from app.models.base import utcnow
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory


@pytest.fixture
def conversation(session):
    return ConversationFactory()


@pytest.fixture
def staff(conversation):
    return StaffFactory(street=conversation.resident.community.street)


def _open(conversation):
    return tickets.open_ticket(street_id=conversation.resident.community.street_id, source="bot", subject="求助",
                               conversation_id=conversation.id, resident_id=conversation.resident_id)


def _message(session, conversation, text):
    message = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident", text=text)
    session.add(message)
    session.flush()
    return message


def _events(session, ticket, kind):
    return session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == kind)
                           .order_by(TicketEvent.id)).all()


def test_without_a_ticket_the_bot_answers(session, conversation):
    message = _message(session, conversation, "几点开门")
    assert tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id) is None


def test_a_message_on_an_open_ticket_joins_its_timeline(session, conversation):
    ticket = _open(conversation)
    message = _message(session, conversation, "还没人来修")
    assert tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id).id == ticket.id
    [event] = _events(session, ticket, "message_in")
    assert event.body == "还没人来修" and event.data["message_id"] == message.id


def test_the_resident_writing_moves_a_pending_ticket_back_to_open(session, conversation, staff):
    ticket = _open(conversation)
    tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status="pending")
    message = _message(session, conversation, "照片发您了")
    tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id)
    assert ticket.status == "open"
    assert _events(session, ticket, "status")[-1].data == {"from": "pending", "to": "open"}


def test_a_message_within_seven_days_of_resolution_reopens_the_ticket(session, conversation, staff):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id, now=utcnow() - timedelta(days=6))
    message = _message(session, conversation, "又坏了")
    routed = tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id)
    assert routed.id == ticket.id
    session.refresh(ticket)
    assert ticket.status == "open" and ticket.reopened_count == 1 and ticket.resolved_at is None
    assert _events(session, ticket, "status")[-1].data["reopen"] is True


def test_a_message_after_seven_days_goes_to_the_bot_and_a_new_ticket_can_open(session, conversation, staff):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id, now=utcnow() - timedelta(days=7, minutes=1))
    message = _message(session, conversation, "新问题")
    assert tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id) is None
    assert ticket.status == "resolved"
    assert _open(conversation).id != ticket.id


def test_a_rating_answer_does_not_reopen_the_ticket(session, conversation, staff):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    message = _message(session, conversation, "5")
    assert tickets.route_resident_message(conversation_id=conversation.id, message_id=message.id) is None
    assert ticket.status == "resolved"


@pytest.mark.parametrize("text, score", [("5", 5), ("1", 1), ("五", 5), ("三分", 3), ("5分", 5), ("４", 4),
                                         (" 2 ", 2), ("4星", 4), ("5。", 5)])
def test_a_rating_is_stored_once_with_a_thank_you(session, conversation, staff, text, score):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    assert tickets.capture_csat(conversation_id=conversation.id, text=text) == tickets.CSAT_THANKS
    session.refresh(ticket)
    assert ticket.csat_score == score
    assert [e.data for e in _events(session, ticket, "csat")] == [{"score": score}]
    assert tickets.capture_csat(conversation_id=conversation.id, text="1") is None  # only once
    session.refresh(ticket)
    assert ticket.csat_score == score


@pytest.mark.parametrize("text", ["6", "0", "好", "55", "5 stars please", "", "谢谢"])
def test_anything_but_one_to_five_is_not_a_rating(session, conversation, staff, text):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    assert tickets.capture_csat(conversation_id=conversation.id, text=text) is None
    assert ticket.csat_score is None


def test_no_rating_is_taken_when_none_was_asked(session, conversation):
    _open(conversation)
    assert tickets.capture_csat(conversation_id=conversation.id, text="5") is None


@pytest.mark.parametrize("closed", [False, True])
def test_after_the_reopen_window_a_digit_is_no_longer_taken_as_the_rating(session, conversation, staff, closed):
    ticket = _open(conversation)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id, now=utcnow() - timedelta(days=8))
    if closed:
        assert tickets.close_resolved() == 1
    assert tickets.capture_csat(conversation_id=conversation.id, text="1") is None  # "1. 挂号" from the bot's list
    session.refresh(ticket)
    assert ticket.csat_score is None
