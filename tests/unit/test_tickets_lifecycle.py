"""Ticket status transitions: the allowed ones, the refused ones, closing, and the one rating question."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.errors import InvalidTransition, NotFound
from app.models import OutboundMessage, Ticket, TicketEvent
from app.models.base import utcnow
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory


@pytest.fixture
def desk(session):
    """A conversation of a resident in a street, a staff member of that street, and an open ticket."""
    conversation = ConversationFactory()
    street_id = conversation.resident.community.street_id
    staff = StaffFactory(street=conversation.resident.community.street)
    ticket = tickets.open_ticket(street_id=street_id, source="bot", subject="路灯坏了",
                                 conversation_id=conversation.id, resident_id=conversation.resident_id)
    return ticket, staff, conversation


def _statuses(ticket_id):
    return [(e.data or {}).get("to") for e in tickets.db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "status").order_by(TicketEvent.id))]


@pytest.mark.parametrize("path", [
    ["pending"], ["pending", "open"], ["resolved"], ["pending", "resolved"], ["resolved", "open"],
    ["pending", "open", "pending", "resolved", "open", "resolved"],
])
def test_staff_can_walk_the_allowed_transitions(desk, path):
    ticket, staff, _ = desk
    for status in path:
        tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status=status)
        assert ticket.status == status
    assert _statuses(ticket.id) == ["open", *path]


@pytest.mark.parametrize("setup, target", [
    ([], "closed"), ([], "open"), (["pending"], "pending"), (["resolved"], "pending"), (["resolved"], "resolved"),
    (["resolved"], "closed"), ([], "archived"),
])
def test_invalid_transitions_are_refused_with_a_clear_error(desk, setup, target):
    ticket, staff, _ = desk
    for status in setup:
        tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status=status)
    before = ticket.status
    with pytest.raises(InvalidTransition) as exc:
        tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status=target)
    assert exc.value.message  # a sentence a person can read, not a code
    assert exc.value.details == {"from": before, "to": target}
    assert ticket.status == before


def test_a_closed_ticket_cannot_be_reopened_or_answered(desk):
    ticket, staff, _ = desk
    ticket.status, ticket.resolved_at = "closed", utcnow()
    for status in ("open", "pending", "resolved"):
        with pytest.raises(InvalidTransition):
            tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status=status)
    with pytest.raises(InvalidTransition):
        tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="还在吗")


def test_the_close_job_closes_tickets_seven_days_after_resolution_only(desk, session):
    ticket, staff, _ = desk
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id, now=utcnow() - timedelta(days=6, hours=23))
    assert tickets.close_resolved() == 0
    assert ticket.status == "resolved"
    assert tickets.close_resolved(now=utcnow() + timedelta(hours=2)) == 1
    session.refresh(ticket)
    assert ticket.status == "closed" and ticket.closed_at is not None
    assert _statuses(ticket.id)[-1] == "closed"


def test_resolving_asks_the_resident_for_a_rating_once(desk, session):
    ticket, staff, conversation = desk
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    tickets.set_status(ticket_id=ticket.id, staff_id=staff.id, status="open")
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    rows = session.scalars(select(OutboundMessage).where(OutboundMessage.conversation_id == conversation.id)).all()
    assert [(r.kind, r.body) for r in rows] == [("csat_request", tickets.CSAT_QUESTION)]
    assert rows[0].ticket_id == ticket.id and rows[0].status == "pending"
    assert "1-5" in rows[0].body


def test_a_ticket_without_conversation_resolves_without_asking_anyone(session):
    staff = StaffFactory()
    ticket = tickets.open_ticket(street_id=staff.street_id, source="staff", subject="巡查发现井盖缺失")
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    assert ticket.status == "resolved" and ticket.csat_requested_at is None
    assert session.scalar(select(OutboundMessage.id).where(OutboundMessage.ticket_id == ticket.id)) is None


def test_staff_of_another_street_cannot_touch_the_ticket(desk):
    ticket, _, _ = desk
    outsider = StaffFactory()
    for action in (
        lambda: tickets.set_status(ticket_id=ticket.id, staff_id=outsider.id, status="pending"),
        lambda: tickets.resolve_ticket(ticket_id=ticket.id, staff_id=outsider.id),
        lambda: tickets.reply(ticket_id=ticket.id, staff_id=outsider.id, body="hi"),
        lambda: tickets.add_note(ticket_id=ticket.id, staff_id=outsider.id, body="hi"),
        lambda: tickets.claim(ticket_id=ticket.id, staff_id=outsider.id),
        lambda: tickets.assign(ticket_id=ticket.id, staff_id=outsider.id, assignee_id=outsider.id),
        lambda: tickets.set_priority(ticket_id=ticket.id, staff_id=outsider.id, priority="urgent"),
        lambda: tickets.timeline(ticket_id=ticket.id, staff=outsider),
    ):
        with pytest.raises(NotFound):
            action()
    assert tickets.db.session.get(Ticket, ticket.id).status == "open"
