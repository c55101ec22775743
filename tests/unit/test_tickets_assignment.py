"""Who answers a ticket: claiming, assigning and reassigning, round-robin offers; replies, notes and the timeline."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from app.models import CannedReply, Message, OutboundMessage, TicketEvent
from app.models.base import utcnow
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory


@pytest.fixture
def conversation(session):
    return ConversationFactory()


@pytest.fixture
def street(conversation):
    return conversation.resident.community.street


@pytest.fixture
def ticket(conversation, street):
    return tickets.open_ticket(street_id=street.id, source="bot", subject="噪音投诉", conversation_id=conversation.id,
                               resident_id=conversation.resident_id)


def _events(session, ticket, kind):
    return session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == kind)
                           .order_by(TicketEvent.id)).all()


def test_staff_claim_an_unassigned_ticket(session, street, ticket):
    staff = StaffFactory(street=street)
    tickets.claim(ticket_id=ticket.id, staff_id=staff.id)
    assert ticket.assignee_id == staff.id
    assert _events(session, ticket, "assignment")[0].data == {"from": None, "to": staff.id, "via": "claim"}


def test_a_ticket_someone_holds_cannot_be_claimed(street, ticket):
    first, second = StaffFactory(street=street), StaffFactory(street=street)
    tickets.claim(ticket_id=ticket.id, staff_id=first.id)
    with pytest.raises(Conflict) as exc:
        tickets.claim(ticket_id=ticket.id, staff_id=second.id)
    assert first.display_name in exc.value.message
    assert ticket.assignee_id == first.id


def test_reassigning_needs_a_reason(session, street, ticket):
    holder, other = StaffFactory(street=street), StaffFactory(street=street)
    tickets.claim(ticket_id=ticket.id, staff_id=holder.id)
    with pytest.raises(ValidationFailed):
        tickets.assign(ticket_id=ticket.id, staff_id=holder.id, assignee_id=other.id, reason="  ")
    tickets.assign(ticket_id=ticket.id, staff_id=holder.id, assignee_id=other.id, reason="我下班了")
    assert ticket.assignee_id == other.id
    last = _events(session, ticket, "assignment")[-1]
    assert last.body == "我下班了" and last.data == {"from": holder.id, "to": other.id, "via": "reassign"}


def test_only_the_holder_or_a_team_lead_may_take_a_ticket_away(street, ticket):
    holder, bystander = StaffFactory(street=street), StaffFactory(street=street)
    lead = StaffFactory(street=street, role="admin")
    tickets.claim(ticket_id=ticket.id, staff_id=holder.id)
    with pytest.raises(Forbidden):
        tickets.assign(ticket_id=ticket.id, staff_id=bystander.id, assignee_id=bystander.id, reason="我来")
    tickets.assign(ticket_id=ticket.id, staff_id=lead.id, assignee_id=bystander.id, reason="平衡工作量")
    assert ticket.assignee_id == bystander.id


def test_a_ticket_cannot_be_assigned_to_staff_of_another_street(street, ticket):
    staff, outsider = StaffFactory(street=street), StaffFactory()
    with pytest.raises(NotFound):
        tickets.assign(ticket_id=ticket.id, staff_id=staff.id, assignee_id=outsider.id)
    assert ticket.assignee_id is None


def test_round_robin_offers_unclaimed_tickets_in_turn_to_staff_on_duty(session, street):
    a, b = StaffFactory(street=street), StaffFactory(street=street)
    StaffFactory(street=street, on_duty=False)
    old = utcnow() - timedelta(minutes=5)
    made = [tickets.open_ticket(street_id=street.id, source="staff", subject=f"t{i}", now=old) for i in range(3)]
    fresh = tickets.open_ticket(street_id=street.id, source="staff", subject="刚来的")  # inside the grace period
    offered = dict(tickets.offer_unassigned())
    assert fresh.id not in offered
    assert sorted(offered) == sorted(t.id for t in made)
    assert sorted(offered.values()) == sorted([a.id, b.id, a.id]) or sorted(offered.values()) == sorted([a.id, b.id, b.id])
    assert len({offered[made[0].id], offered[made[1].id]}) == 2  # the next one goes to the other person
    assert _events(session, made[0], "assignment")[0].data["via"] == "round_robin"


def test_round_robin_skips_streets_with_nobody_on_duty(street):
    StaffFactory(street=street, on_duty=False)
    ticket = tickets.open_ticket(street_id=street.id, source="staff", subject="x", now=utcnow() - timedelta(hours=1))
    assert ticket.id not in dict(tickets.offer_unassigned())
    assert ticket.assignee_id is None


def test_a_reply_goes_to_the_outbox_and_meets_the_first_response_target(session, street, ticket, conversation):
    staff = StaffFactory(street=street)
    row = tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="您好，已安排人员上门")
    assert (row.kind, row.ticket_id, row.conversation_id, row.body) == (
        "staff_reply", ticket.id, conversation.id, "您好，已安排人员上门")
    first = ticket.first_responded_at
    assert first is not None
    assert ticket.assignee_id == staff.id  # whoever answers an unassigned ticket owns it
    [event] = _events(session, ticket, "reply_out")
    assert event.data == {"outbound_id": row.id} and event.staff_id == staff.id
    tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="还有别的问题吗")
    assert ticket.first_responded_at == first


def test_a_canned_reply_is_sent_by_its_short_code(session, street, ticket):
    staff = StaffFactory(street=street)
    session.add(CannedReply(street_id=street.id, code="wait", body="收到，我们正在处理，请稍等。"))
    session.flush()
    assert tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="/wait").body == "收到，我们正在处理，请稍等。"
    with pytest.raises(ValidationFailed):
        tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="/nope")
    assert [c.code for c in tickets.canned_replies(street_id=street.id)] == ["wait"]


def test_replies_are_refused_once_resolved(street, ticket):
    staff = StaffFactory(street=street)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    with pytest.raises(InvalidTransition):
        tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="补充一句")


def test_a_private_note_never_reaches_the_resident(session, street, ticket, conversation):
    staff = StaffFactory(street=street)
    tickets.add_note(ticket_id=ticket.id, staff_id=staff.id, body="居民情绪激动，注意措辞")
    assert [e.body for e in _events(session, ticket, "note")] == ["居民情绪激动，注意措辞"]
    assert session.scalar(select(OutboundMessage.id).where(OutboundMessage.conversation_id == conversation.id)) is None
    with pytest.raises(ValidationFailed):
        tickets.add_note(ticket_id=ticket.id, staff_id=staff.id, body=" ")


def test_the_timeline_starts_with_the_bot_conversation_before_the_ticket(session, street, conversation):
    staff = StaffFactory(street=street)
    earlier = utcnow() - timedelta(minutes=10)
    session.add_all([
        Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident", text="楼道灯不亮",
                created_at=earlier),
        Message(conversation_id=conversation.id, channel="wechat", direction="out", author="bot", text="抱歉没听懂",
                created_at=earlier + timedelta(seconds=1)),
    ])
    session.flush()
    ticket = tickets.open_ticket(street_id=street.id, source="bot", subject="转人工", conversation_id=conversation.id)
    tickets.reply(ticket_id=ticket.id, staff_id=staff.id, body="马上处理")
    tickets.add_note(ticket_id=ticket.id, staff_id=staff.id, body="已通知物业")
    entries = tickets.timeline(ticket_id=ticket.id, staff=staff)
    assert [(e["kind"], e["body"]) for e in entries] == [
        ("transcript", "楼道灯不亮"), ("transcript", "抱歉没听懂"), ("status", ""), ("assignment", ""),
        ("reply_out", "马上处理"), ("note", "已通知物业"),
    ]
    assert entries[4]["delivery"]["status"] == "pending"
    assert entries[4]["author"] == staff.display_name


def test_queues_show_only_the_staff_members_street(street, ticket):
    staff, outsider = StaffFactory(street=street), StaffFactory()
    assert [t.id for t in tickets.queue(staff=staff, view="unassigned")] == [ticket.id]
    assert tickets.queue(staff=outsider, view="open") == []
    assert tickets.queue_counts(staff=outsider)["open"] == 0
    tickets.claim(ticket_id=ticket.id, staff_id=staff.id)
    assert [t.id for t in tickets.queue(staff=staff, view="mine")] == [ticket.id]
    assert tickets.queue_counts(staff=staff) == {"mine": 1, "unassigned": 0, "open": 1, "breached": 0, "resolved": 0}


def test_queue_filters_by_priority_category_and_text(street, ticket):
    staff = StaffFactory(street=street)
    other = tickets.open_ticket(street_id=street.id, source="staff", subject="垃圾清运", priority="high",
                                category="环境")
    assert [t.id for t in tickets.queue(staff=staff, priority="high")] == [other.id]
    assert [t.id for t in tickets.queue(staff=staff, category="环境")] == [other.id]
    assert [t.id for t in tickets.queue(staff=staff, search="噪音")] == [ticket.id]
    with pytest.raises(ValidationFailed):
        tickets.queue(staff=staff, view="everything")


def test_the_message_that_opened_the_ticket_shows_once(session, street, conversation):
    staff = StaffFactory(street=street)
    message = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                      text="我要投诉", created_at=utcnow() - timedelta(seconds=1))
    session.add(message)
    session.flush()
    ticket = tickets.open_ticket(street_id=street.id, source="bot", subject="投诉", conversation_id=conversation.id)
    tickets.add_event(ticket_id=ticket.id, kind="message_in", body="我要投诉", data={"message_id": message.id})
    bodies = [e["body"] for e in tickets.timeline(ticket_id=ticket.id, staff=staff)]
    assert bodies.count("我要投诉") == 1
