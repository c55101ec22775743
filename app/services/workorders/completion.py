"""办结: a department completes its work order; the ticket resolves, the resident is asked the follow-up (回访) and
the reporters of duplicates hear the outcome. Apart from orders.py because it uses the follow-up and duplicates,
which use orders.py."""
from __future__ import annotations

from datetime import datetime

from app.core.extensions import db
from app.models import WorkOrder
from app.models.base import utcnow
from app.services import tickets
from app.services.workorders import duplicates, followup, orders


def complete(*, ticket_id: int, staff_id: int, note: str = "", now: datetime | None = None) -> WorkOrder:
    """办结: the department resolves the ticket; the resident is asked the follow-up, duplicates hear the outcome."""
    ticket, actor = orders.ticket_and_actor(ticket_id, staff_id)
    orders.require_open(ticket)
    order = orders.active_order(ticket)
    orders.require_department_member(order, actor)
    now = now or utcnow()
    orders.moved(order, "dispatched", order.department_id, state="done", done_at=now,
                 responded_at=order.responded_at or now)
    note = note.strip()[:200]
    orders.event(ticket.id, "complete", f"“{order.department.name}”办结" + (f"：{note}" if note else ""),
                 staff_id=actor.id, now=now, department_id=order.department_id)
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=actor.id, now=now, ask_rating=False)  # commits
    followup.ask(work_order_id=order.id, now=now)
    duplicates.tell_outcome(parent_ticket_id=ticket.id, now=now)
    db.session.refresh(order)
    return order
