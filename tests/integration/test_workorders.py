"""Work orders: dispatch (派单), transfer (转办), return (退单), oversight (督办) and completion, each allowed and
refused; a refusal is a 4xx with a clear code and changes nothing (issue 21)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.errors import DomainError
from app.core.extensions import db
from app.models import Ticket, TicketEvent, WorkOrder, WorkOrderDispatch, WorkOrderTimeLimit
from app.models.base import utcnow
from app.services import workorders
from tests.factories import ConversationFactory
from tests.helpers.workorders import build_world, open_ticket


@pytest.fixture
def w(session):
    return build_world()


def steps(ticket_id: int) -> list[tuple[str, int | None]]:
    db.session.expire_all()
    return [(e.data["step"], e.staff_id) for e in db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "workorder")
        .order_by(TicketEvent.id))]


def snapshot(ticket_id: int) -> tuple:
    db.session.expire_all()
    order = workorders.work_order_of(ticket_id=ticket_id)
    events = db.session.scalar(select(func.count(TicketEvent.id)).where(TicketEvent.ticket_id == ticket_id))
    turns = db.session.scalars(select(WorkOrderDispatch.outcome).where(
        WorkOrderDispatch.work_order_id == (order.id if order else None)).order_by(WorkOrderDispatch.id)).all()
    return (events, db.session.get(Ticket, ticket_id).status, turns,
            order and (order.state, order.department_id, order.transfers, order.supervised_at, order.responded_at,
                       order.done_at))


def refused(call, status: int, code: str, ticket_id: int):
    before = snapshot(ticket_id)
    with pytest.raises(DomainError) as caught:
        call()
    db.session.rollback()
    assert (caught.value.status, caught.value.code) == (status, code)
    assert snapshot(ticket_id) == before, "a refusal changed something"


def test_dispatch_transfer_oversee_and_complete_are_each_on_the_timeline_with_who(w):
    conversation = ConversationFactory()
    ticket = open_ticket(w.street, category="facilities", priority="high", conversation_id=conversation.id,
                         resident_id=conversation.resident_id)
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    assert (order.state, order.department_id) == ("dispatched", w.property.id)

    workorders.oversee(ticket_id=ticket.id, staff_id=w.lead.id, note="今天必须处理")
    order = workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id,
                                reason="占道经营归城管")
    assert (order.department_id, order.transfers, order.supervised_at) == (w.urban.id, 1, None)
    workorders.respond(ticket_id=ticket.id, staff_id=w.city.id, body="已派人到场")
    order = workorders.complete(ticket_id=ticket.id, staff_id=w.city.id, note="已清理")

    assert order.state == "done" and order.ticket.status == "resolved"
    assert steps(ticket.id)[:5] == [("dispatch", w.dispatcher.id), ("oversee", w.lead.id), ("transfer", w.member.id),
                                    ("respond", w.city.id), ("complete", w.city.id)]
    transfer = db.session.scalar(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                           TicketEvent.data["step"].as_string() == "transfer"))
    assert "占道经营归城管" in transfer.body and transfer.data["reason"] == "占道经营归城管"


def test_a_returned_ticket_goes_back_to_the_dispatchers_and_can_be_dispatched_again(w):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    order = workorders.return_order(ticket_id=ticket.id, staff_id=w.member.id, reason="不在物业管辖范围")
    assert order.state == "returned"
    assert [o.ticket_id for o in workorders.returned_orders(street_id=w.street.id)] == [ticket.id]

    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.urban.id)
    assert (order.state, order.department_id) == ("dispatched", w.urban.id)
    assert [s for s, _ in steps(ticket.id)] == ["dispatch", "return", "dispatch"]


def test_dispatch_to_another_streets_department_is_not_found(w):
    ticket = open_ticket(w.street)
    refused(lambda: workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.foreign.id),
            404, "department_not_found", ticket.id)
    assert workorders.work_order_of(ticket_id=ticket.id) is None


def test_another_streets_staff_cannot_reach_the_ticket(w):
    ticket = open_ticket(w.street)
    refused(lambda: workorders.dispatch(ticket_id=ticket.id, staff_id=w.other_admin.id, department_id=w.foreign.id),
            404, "not_found", ticket.id)


@pytest.mark.parametrize("status, code", [("closed", "ticket_closed"), ("resolved", "ticket_not_open")])
def test_a_closed_or_resolved_ticket_is_neither_dispatched_nor_transferred(w, status, code):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    ticket.status = status
    db.session.commit()
    refused(lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id,
                                        reason="x"), 409, code, ticket.id)
    fresh = open_ticket(w.street, status=status)
    refused(lambda: workorders.dispatch(ticket_id=fresh.id, staff_id=w.dispatcher.id, department_id=w.urban.id),
            409, code, fresh.id)


def test_only_the_departments_own_people_act_on_its_ticket(w):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    for call in (
        lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.city.id, department_id=w.urban.id, reason="x"),
        lambda: workorders.return_order(ticket_id=ticket.id, staff_id=w.dispatcher.id, reason="x"),
        lambda: workorders.complete(ticket_id=ticket.id, staff_id=w.city.id),
        lambda: workorders.respond(ticket_id=ticket.id, staff_id=w.city.id, body="不是我的"),
    ):
        refused(call, 403, "not_your_department", ticket.id)
    # Oversight is the lead's (or a team lead's): a member of the department is refused.
    refused(lambda: workorders.oversee(ticket_id=ticket.id, staff_id=w.member.id, note="快点"),
            403, "not_department_lead", ticket.id)
    assert workorders.oversee(ticket_id=ticket.id, staff_id=w.admin.id, note="组长督办").supervised_at is not None


def test_refusals_of_bad_requests(w):
    ticket = open_ticket(w.street)
    refused(lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id,
                                        reason="x"), 409, "not_dispatched", ticket.id)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    refused(lambda: workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.urban.id),
            409, "already_dispatched", ticket.id)
    refused(lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id,
                                        reason="  "), 422, "reason_required", ticket.id)
    refused(lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.property.id,
                                        reason="x"), 422, "same_department", ticket.id)
    refused(lambda: workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.foreign.id,
                                        reason="x"), 404, "department_not_found", ticket.id)
    refused(lambda: workorders.return_order(ticket_id=ticket.id, staff_id=w.member.id, reason=""),
            422, "reason_required", ticket.id)


def test_a_stale_transition_loses_the_compare_and_set(w):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    order = workorders.work_order_of(ticket_id=ticket.id)
    from app.services.workorders import orders

    # What a second click read before the first one's transfer committed: the property department.
    workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id, reason="城管的")
    before = snapshot(ticket.id)
    with pytest.raises(DomainError) as caught:
        orders.moved(order, "dispatched", w.property.id, state="returned")
    assert caught.value.code == "work_order_changed" and caught.value.status == 409
    assert snapshot(ticket.id) == before


def test_members_see_their_departments_queue_only(w):
    mine, theirs = open_ticket(w.street), open_ticket(w.street)
    workorders.dispatch(ticket_id=mine.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.dispatch(ticket_id=theirs.id, staff_id=w.dispatcher.id, department_id=w.urban.id)
    assert [o.ticket_id for o in workorders.department_queue(staff=w.member)] == [mine.id]
    assert [o.ticket_id for o in workorders.department_queue(staff=w.city)] == [theirs.id]
    assert workorders.department_queue(staff=w.dispatcher) == []
    with pytest.raises(DomainError) as caught:
        workorders.department_queue(staff=w.member, department_id=w.urban.id)
    assert caught.value.status == 404


def test_time_limits_come_from_the_table_then_the_category_then_the_settings(w):
    workorders.set_limit(actor=w.admin, category="facilities", priority=None, response_minutes=60,
                         handling_minutes=600)
    workorders.set_limit(actor=w.admin, category="facilities", priority="urgent", response_minutes=10,
                         handling_minutes=120)
    mine = dict(street_id=w.street.id)
    assert workorders.limits_for(**mine, category="facilities", priority="urgent") == (timedelta(minutes=10),
                                                                                        timedelta(minutes=120))
    assert workorders.limits_for(**mine, category="facilities", priority="low") == (timedelta(minutes=60),
                                                                                     timedelta(minutes=600))
    assert workorders.limits_for(**mine, category="noise", priority="low") == (timedelta(minutes=240),
                                                                                timedelta(days=3))
    ticket = open_ticket(w.street, category="facilities", priority="urgent")
    before = utcnow()
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    assert before + timedelta(minutes=10) <= order.response_due_at <= utcnow() + timedelta(minutes=10)
    with pytest.raises(DomainError) as caught:
        workorders.set_limit(actor=w.member, category="x", priority=None, response_minutes=1, handling_minutes=2)
    assert caught.value.status == 403
    with pytest.raises(DomainError) as caught:
        workorders.set_limit(actor=w.admin, category="x", priority=None, response_minutes=9, handling_minutes=2)
    assert caught.value.code == "invalid_limits"
    assert db.session.scalar(select(func.count(WorkOrderTimeLimit.id))) == 2


def test_departments_are_set_up_by_team_leads_of_their_own_street(w):
    with pytest.raises(DomainError) as caught:
        workorders.create_department(actor=w.member, name="民政")
    assert (caught.value.status, caught.value.code) == (403, "admin_only")
    with pytest.raises(DomainError) as caught:
        workorders.create_department(actor=w.admin, name="物业")
    assert caught.value.code == "department_exists"
    db.session.rollback()
    with pytest.raises(DomainError) as caught:
        workorders.add_member(actor=w.admin, department_id=w.foreign.id, staff_id=w.member.id)
    assert caught.value.status == 404
    with pytest.raises(DomainError) as caught:
        workorders.add_member(actor=w.admin, department_id=w.urban.id, staff_id=w.other_admin.id)
    assert caught.value.code == "staff_not_found"
    assert {s.id for s in workorders.members_of(department_id=w.urban.id)} == {w.city.id}
    assert db.session.scalar(select(func.count(WorkOrder.id))) == 0


def test_time_limits_are_each_streets_own(w):
    # Another street's team lead sets a limit of the same category: it governs their street only.
    workorders.set_limit(actor=w.other_admin, category="facilities", priority=None, response_minutes=1,
                         handling_minutes=2)
    assert workorders.limits_for(street_id=w.street.id, category="facilities", priority="normal") == (
        timedelta(minutes=240), timedelta(days=3))
    assert workorders.all_limits(street_id=w.street.id) == []
    workorders.set_limit(actor=w.admin, category="facilities", priority=None, response_minutes=30,
                         handling_minutes=300)
    ticket = open_ticket(w.street, category="facilities")
    start = utcnow()
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id, now=start)
    assert (order.response_due_at - start, order.handling_due_at - start) == (timedelta(minutes=30),
                                                                              timedelta(minutes=300))
    assert [(r.street_id, r.response_minutes) for r in workorders.all_limits(street_id=w.other.id)] == [(w.other.id, 1)]
    assert [(r.street_id, r.response_minutes) for r in workorders.all_limits(street_id=w.street.id)] == [
        (w.street.id, 30)]


def test_acknowledging_meets_the_response_limit_without_a_reply(w):
    # A staff-opened ticket: nobody to answer, so 签收 alone is the department's response.
    ticket = open_ticket(w.street)
    start = utcnow() - timedelta(days=10)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id, now=start)
    refused(lambda: workorders.acknowledge(ticket_id=ticket.id, staff_id=w.admin.id), 403, "not_your_department",
            ticket.id)
    order = workorders.acknowledge(ticket_id=ticket.id, staff_id=w.member.id, now=start + timedelta(minutes=5))
    assert order.responded_at == start + timedelta(minutes=5)
    refused(lambda: workorders.acknowledge(ticket_id=ticket.id, staff_id=w.lead.id), 409, "already_responded",
            ticket.id)
    from app.services.workorders import timers

    assert {(t, m) for _, t, m in timers.sweep()} == {("handling", "breach")}  # the response was in time
    assert [s for s, _ in steps(ticket.id)][-2:] == ["acknowledge", "breach"]


def test_refused_transitions_are_4xx_and_change_nothing(w):
    ticket = open_ticket(w.street)
    # Nothing dispatched yet: no department can return, complete, answer or acknowledge it.
    for call in (lambda: workorders.return_order(ticket_id=ticket.id, staff_id=w.member.id, reason="x"),
                 lambda: workorders.complete(ticket_id=ticket.id, staff_id=w.member.id),
                 lambda: workorders.respond(ticket_id=ticket.id, staff_id=w.member.id, body="x"),
                 lambda: workorders.acknowledge(ticket_id=ticket.id, staff_id=w.member.id),
                 lambda: workorders.oversee(ticket_id=ticket.id, staff_id=w.admin.id, note="x")):
        refused(call, 409, "not_dispatched", ticket.id)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    refused(lambda: workorders.oversee(ticket_id=ticket.id, staff_id=w.lead.id, note="  "), 422, "reason_required",
            ticket.id)
    # A team lead who belongs to no department oversees, but does not answer for the department (admin_may=False).
    refused(lambda: workorders.respond(ticket_id=ticket.id, staff_id=w.admin.id, body="组长代答"), 403,
            "not_your_department", ticket.id)
    workorders.return_order(ticket_id=ticket.id, staff_id=w.member.id, reason="不归物业")
    refused(lambda: workorders.oversee(ticket_id=ticket.id, staff_id=w.admin.id, note="快"), 409, "not_dispatched",
            ticket.id)

    done = open_ticket(w.street)
    workorders.dispatch(ticket_id=done.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=done.id, staff_id=w.member.id)
    refused(lambda: workorders.complete(ticket_id=done.id, staff_id=w.member.id), 409, "ticket_not_open", done.id)

    closed = open_ticket(w.street)
    workorders.dispatch(ticket_id=closed.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    db.session.get(Ticket, closed.id).status = "closed"
    db.session.commit()
    for call in (lambda: workorders.oversee(ticket_id=closed.id, staff_id=w.lead.id, note="x"),
                 lambda: workorders.return_order(ticket_id=closed.id, staff_id=w.member.id, reason="x"),
                 lambda: workorders.complete(ticket_id=closed.id, staff_id=w.member.id),
                 lambda: workorders.respond(ticket_id=closed.id, staff_id=w.member.id, body="x"),
                 lambda: workorders.acknowledge(ticket_id=closed.id, staff_id=w.member.id)):
        refused(call, 409, "ticket_closed", closed.id)
