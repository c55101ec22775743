"""办结 and the ticket's own status buttons on a dispatched ticket: a department completes its work order (or staff
mark the ticket resolved, which completes it too), the ticket resolves, the resident is asked the follow-up (回访)
and only it, and the reporters of duplicates hear the outcome; a reopened ticket takes its work order back to the
department. Apart from orders.py because it uses the follow-up and duplicates, which use orders.py."""
from __future__ import annotations

from datetime import datetime

from app.core.extensions import db
from app.models import Staff, Ticket, WorkOrder
from app.models.base import utcnow
from app.services import tickets
from app.services.workorders import duplicates, followup, orders


def complete(*, ticket_id: int, staff_id: int, note: str = "", now: datetime | None = None) -> WorkOrder:
    """办结: the department resolves the ticket; the resident is asked the follow-up, duplicates hear the outcome."""
    ticket, actor = orders.ticket_and_actor(ticket_id, staff_id)
    orders.require_open(ticket)
    order = orders.active_order(ticket)
    orders.require_department_member(order, actor)
    note = note.strip()[:200]
    _finish(ticket, order, actor, now or utcnow(),
            body=f"“{order.department.name}”办结" + (f"：{note}" if note else ""))
    db.session.refresh(order)
    return order


def resolve_ticket(*, ticket_id: int, staff_id: int, now: datetime | None = None) -> Ticket:
    """标记为已解决 on the ticket page. A dispatched ticket's work order is completed with it, the resolver as actor,
    and the resident is asked the follow-up (which asks the rating too) instead of the ticket's 1-5 question: one
    question, never two. Any other ticket resolves as tickets.resolve_ticket does.

    Any staff member of the street may resolve, as for any ticket (the resident may have said it is fixed); the
    timeline says who."""
    ticket, actor = orders.ticket_and_actor(ticket_id, staff_id)
    order = orders.work_order_of(ticket_id=ticket.id)
    if order is None or order.state != "dispatched" or ticket.status not in orders.OPEN:
        return tickets.resolve_ticket(ticket_id=ticket.id, staff_id=actor.id, now=now)
    _finish(ticket, order, actor, now or utcnow(), body=f"标记为已解决，“{order.department.name}”的工单随之办结",
            via="resolve")
    db.session.refresh(ticket)
    return ticket


def set_ticket_status(*, ticket_id: int, staff_id: int, status: str, now: datetime | None = None) -> Ticket:
    """The ticket page's status buttons (tickets.set_status), the work order following its ticket: resolving
    completes it (resolve_ticket), reopening sends it back to its department (reopen_with_ticket)."""
    if status == "resolved":
        return resolve_ticket(ticket_id=ticket_id, staff_id=staff_id, now=now)
    ticket = tickets.set_status(ticket_id=ticket_id, staff_id=staff_id, status=status, now=now)
    if status == "open":
        reopen_with_ticket(ticket_id=ticket.id, staff_id=staff_id, reason="工作人员重新打开", now=now)
    return ticket


def reopen_with_ticket(*, ticket_id: int, reason: str, staff_id: int | None = None,
                       now: datetime | None = None) -> bool:
    """A ticket open again (the resident wrote after it was resolved, or staff reopened it) takes its done work order
    back to the same department, limits counted from now, as the follow-up's "not solved" does; the follow-up question
    still unanswered lapses. False when there is nothing to reopen (no work order, or not done)."""
    order = orders.work_order_of(ticket_id=ticket_id)
    if order is None or order.state != "done":
        return False
    ticket = db.session.get(Ticket, ticket_id)
    if ticket.status not in orders.OPEN:
        return False
    now = now or utcnow()
    reopened = orders.reopen(order, ticket, now=now, staff_id=staff_id,
                             body=f"{reason}，退回“{order.department.name}”重新办理", via="ticket")
    if reopened:
        followup.expire_open(work_order_id=order.id)
    db.session.commit()
    return reopened


def _finish(ticket: Ticket, order: WorkOrder, actor: Staff, now: datetime, *, body: str, **data) -> None:
    orders.moved(order, "dispatched", order.department_id, state="done", done_at=now,
                 responded_at=order.responded_at or now)
    orders.end_turn(order.id, outcome="done", now=now)
    orders.event(ticket.id, "complete", body, staff_id=actor.id, now=now, department_id=order.department_id, **data)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=actor.id, now=now, ask_rating=False)  # commits
    followup.ask(work_order_id=order.id, now=now)
    duplicates.tell_outcome(parent_ticket_id=ticket.id, now=now)
