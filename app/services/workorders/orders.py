"""A ticket's work order: dispatched (派单) to a department of its street, transferred (转办) with a reason, returned
(退单) when it is not theirs, overseen (督办) by the lead, answered and completed (办结) by the department.

States (one row per ticket, each change a compare-and-set on the state and department it was read with, and an
event on the ticket's timeline saying who, when and why):

    (none)     -> dispatched   a street's staff member dispatches an open ticket
    returned   -> dispatched   dispatched again (to any department of the street)
    dispatched -> dispatched   transfer to another department (members of the current one, or a team lead)
    dispatched -> returned     the department returns it, with a reason
    dispatched -> done         the department completes it: the ticket resolves and the follow-up is asked
    done       -> dispatched   reopen, to the same department: the follow-up's "not solved" (followup.py), or the
                               ticket reopened (the resident writes again, staff reopen it: completion.py)

A refusal changes nothing: the checks come before the first write, and a lost race is a 409.

Each department's turn (from a dispatch, transfer or reopening to the next step) is also a row of
work_order_dispatches, which keeps what the work order's own flags forget when its timers start again: whether that
turn breached, and how it ended. The per-department figures count those rows.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from app.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Staff, Ticket, WorkDepartment, WorkOrder, WorkOrderDispatch
from app.models.base import utcnow
from app.services import tickets
from app.services.workorders import departments, limits

OPEN = ("open", "pending")
STATE_LABELS = {"dispatched": "办理中", "returned": "已退单", "done": "已办结"}


def work_order_of(*, ticket_id: int) -> WorkOrder | None:
    return db.session.scalar(select(WorkOrder).where(WorkOrder.ticket_id == ticket_id))


def event(ticket_id: int, step: str, body: str, *, staff_id: int | None, now: datetime, **data) -> None:
    """One step on the ticket's timeline (joins the caller's transaction)."""
    tickets.add_event(ticket_id=ticket_id, kind="workorder", body=body, staff_id=staff_id,
                      data={"step": step, **data, "at": now.isoformat()}, commit=False)


def ticket_and_actor(ticket_id: int, staff_id: int) -> tuple[Ticket, Staff]:
    actor = db.session.get(Staff, staff_id)
    if actor is None or not actor.active:
        raise Forbidden("账号不可用")
    return tickets.get_ticket(ticket_id=ticket_id, staff=actor), actor


def require_open(ticket: Ticket) -> None:
    if ticket.status == "closed":
        raise InvalidTransition("工单已关闭，不能再派转", code="ticket_closed", details={"status": ticket.status})
    if ticket.status not in OPEN:
        raise InvalidTransition("工单已解决，重新打开后才能派转", code="ticket_not_open",
                                details={"status": ticket.status})


def _reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(f"{what}需要填写原因", code="reason_required")
    return reason[:200]


def require_department_member(order: WorkOrder, actor: Staff, *, admin_may: bool = True) -> None:
    if admin_may and actor.role == "admin":
        return
    if order.department_id not in departments.department_ids_of(staff=actor):
        raise Forbidden("此工单不是您部门的", code="not_your_department")


def active_order(ticket: Ticket) -> WorkOrder:
    order = work_order_of(ticket_id=ticket.id)
    if order is None or order.state != "dispatched":
        raise InvalidTransition("工单未派给任何部门", code="not_dispatched",
                                details={"state": order.state if order else None})
    return order


def moved(order: WorkOrder, expected_state: str, expected_department: int, **values) -> None:
    """Compare-and-set on what the caller read: of two clicks at once, the second gets a 409 and changes nothing."""
    won = db.session.execute(
        update(WorkOrder).where(WorkOrder.id == order.id, WorkOrder.state == expected_state,
                                WorkOrder.department_id == expected_department)
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        db.session.rollback()
        raise Conflict("工单刚被他人处理过，请刷新后再试", code="work_order_changed")


def begin_turn(order_id: int, *, street_id: int, department_id: int, opened_by: str, now: datetime) -> None:
    """A department's turn starts (joins the caller's transaction)."""
    db.session.add(WorkOrderDispatch(work_order_id=order_id, street_id=street_id, department_id=department_id,
                                     opened_by=opened_by, dispatched_at=now, outcome="open"))
    db.session.flush()


def end_turn(order_id: int, *, outcome: str, now: datetime) -> None:
    """The open turn ends; a completion that had no answer before is the turn's response too."""
    values = {"outcome": outcome, "ended_at": now}
    if outcome == "done":
        values["responded_at"] = func.coalesce(WorkOrderDispatch.responded_at, now)
    db.session.execute(update(WorkOrderDispatch).where(WorkOrderDispatch.work_order_id == order_id,
                                                       WorkOrderDispatch.outcome == "open")
                       .values(**values).execution_options(synchronize_session=False))


def mark_turn(order_id: int, **values) -> None:
    """Record on the open turn what the work order's row records (a response, a breach)."""
    db.session.execute(update(WorkOrderDispatch).where(WorkOrderDispatch.work_order_id == order_id,
                                                       WorkOrderDispatch.outcome == "open")
                       .values(**values).execution_options(synchronize_session=False))


def fresh_timers(ticket: Ticket, now: datetime) -> dict:
    response, handling = limits.limits_for(street_id=ticket.street_id, category=ticket.category,
                                           priority=ticket.priority)
    return dict(response_due_at=now + response, handling_due_at=now + handling, responded_at=None,
                response_warned=False, handling_warned=False, response_breached=False, handling_breached=False,
                lead_texted_at=None, lead_text_route=None)


def reopen(order: WorkOrder, ticket: Ticket, *, now: datetime, staff_id: int | None, body: str, **data) -> bool:
    """done -> dispatched to the same department, its limits counted from now, on the timeline; False if it was not
    done (someone reopened it a moment ago). Joins the caller's transaction."""
    won = db.session.execute(
        update(WorkOrder).where(WorkOrder.id == order.id, WorkOrder.state == "done")
        .values(state="dispatched", done_at=None, reopened=WorkOrder.reopened + 1, supervised_at=None,
                **fresh_timers(ticket, now))
        .execution_options(synchronize_session=False)).rowcount
    if won:
        # Only the follow-up's "未解决" is a 回访重办; the resident writing again or staff reopening is not.
        begin_turn(order.id, street_id=order.street_id, department_id=order.department_id,
                   opened_by="followup" if data.get("via") == "followup" else "reopen", now=now)
        event(ticket.id, "reopen", body, staff_id=staff_id, now=now, department_id=order.department_id, **data)
    return bool(won)


def dispatch(*, ticket_id: int, staff_id: int, department_id: int, note: str = "",
             now: datetime | None = None) -> WorkOrder:
    """派单: an open ticket to a department of its own street."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    department = departments.get_department(department_id=department_id, street_id=ticket.street_id)
    require_open(ticket)
    now = now or utcnow()
    order = work_order_of(ticket_id=ticket.id)
    if order is None:
        order = WorkOrder(ticket_id=ticket.id, street_id=ticket.street_id, department_id=department.id,
                          state="dispatched", dispatched_at=now, **fresh_timers(ticket, now))
        db.session.add(order)
        db.session.flush()
    elif order.state == "returned":
        moved(order, "returned", order.department_id, state="dispatched", department_id=department.id,
               dispatched_at=now, supervised_at=None, **fresh_timers(ticket, now))
    else:
        raise InvalidTransition(f"工单已派给“{order.department.name}”，请用转办", code="already_dispatched",
                                details={"state": order.state})
    begin_turn(order.id, street_id=ticket.street_id, department_id=department.id, opened_by="dispatch", now=now)
    event(ticket.id, "dispatch", f"派单至“{department.name}”" + (f"：{note.strip()[:200]}" if note.strip() else ""),
          staff_id=actor.id, now=now, department_id=department.id)
    db.session.commit()
    db.session.refresh(order)
    return order


def transfer(*, ticket_id: int, staff_id: int, department_id: int, reason: str,
             now: datetime | None = None) -> WorkOrder:
    """转办: to another department of the street, with a reason; its time limits start again."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    require_open(ticket)
    order = active_order(ticket)
    require_department_member(order, actor)
    target = departments.get_department(department_id=department_id, street_id=ticket.street_id)
    if target.id == order.department_id:
        raise ValidationFailed("已在该部门办理", code="same_department")
    reason = _reason(reason, "转办")
    now = now or utcnow()
    source = order.department
    moved(order, "dispatched", source.id, department_id=target.id, transfers=WorkOrder.transfers + 1,
           supervised_at=None, **fresh_timers(ticket, now))
    end_turn(order.id, outcome="transferred", now=now)
    begin_turn(order.id, street_id=ticket.street_id, department_id=target.id, opened_by="transfer", now=now)
    event(ticket.id, "transfer", f"转办：“{source.name}” → “{target.name}”（{reason}）", staff_id=actor.id, now=now,
          reason=reason, department_id=target.id, from_department_id=source.id)
    db.session.commit()
    db.session.refresh(order)
    return order


def return_order(*, ticket_id: int, staff_id: int, reason: str, now: datetime | None = None) -> WorkOrder:
    """退单: not this department's; back to the street's dispatchers."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    require_open(ticket)
    order = active_order(ticket)
    require_department_member(order, actor)
    reason = _reason(reason, "退单")
    now = now or utcnow()
    moved(order, "dispatched", order.department_id, state="returned")
    end_turn(order.id, outcome="returned", now=now)
    event(ticket.id, "return", f"“{order.department.name}”退单（{reason}）", staff_id=actor.id, now=now,
          reason=reason, department_id=order.department_id)
    db.session.commit()
    db.session.refresh(order)
    return order


def oversee(*, ticket_id: int, staff_id: int, note: str, now: datetime | None = None) -> WorkOrder:
    """督办: the department's lead (or a team lead of the street) presses for it, on the record."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    require_open(ticket)
    order = active_order(ticket)
    if actor.role != "admin" and order.department.lead_id != actor.id:
        raise Forbidden("只有部门负责人或组长可以督办", code="not_department_lead")
    note = _reason(note, "督办")
    now = now or utcnow()
    moved(order, "dispatched", order.department_id, supervised_at=now)
    event(ticket.id, "oversee", f"督办：{note}", staff_id=actor.id, now=now, note=note,
          department_id=order.department_id)
    db.session.commit()
    db.session.refresh(order)
    return order


def respond(*, ticket_id: int, staff_id: int, body: str, now: datetime | None = None) -> WorkOrder:
    """The department answers the resident (through the ticket's reply); the first answer meets the response limit."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    require_open(ticket)
    order = active_order(ticket)
    require_department_member(order, actor, admin_may=False)
    now = now or utcnow()
    tickets.reply(ticket_id=ticket.id, staff_id=actor.id, body=body, now=now)
    if _responded(order, now):
        event(ticket.id, "respond", f"“{order.department.name}”已签收并答复", staff_id=actor.id, now=now,
              department_id=order.department_id)
    db.session.commit()
    db.session.refresh(order)
    return order


def acknowledge(*, ticket_id: int, staff_id: int, now: datetime | None = None) -> WorkOrder:
    """签收 without a reply: the department has taken it on, which meets the response limit. A ticket staff opened
    for nobody reachable (a phone call, a patrol) has no resident to answer, and must not breach for that."""
    ticket, actor = ticket_and_actor(ticket_id, staff_id)
    require_open(ticket)
    order = active_order(ticket)
    require_department_member(order, actor, admin_may=False)
    if order.responded_at is not None:
        raise Conflict("本部门已签收", code="already_responded")
    now = now or utcnow()
    if not _responded(order, now):
        db.session.rollback()
        raise Conflict("本部门已签收", code="already_responded")
    event(ticket.id, "acknowledge", f"“{order.department.name}”已签收", staff_id=actor.id, now=now,
          department_id=order.department_id)
    db.session.commit()
    db.session.refresh(order)
    return order


def _responded(order: WorkOrder, now: datetime) -> bool:
    """The first response of this turn, once (compare-and-set); the turn's record gets it too."""
    if not db.session.execute(update(WorkOrder).where(WorkOrder.id == order.id, WorkOrder.responded_at.is_(None))
                              .values(responded_at=now).execution_options(synchronize_session=False)).rowcount:
        return False
    mark_turn(order.id, responded_at=now)
    return True


def department_queue(*, staff: Staff, department_id: int | None = None, state: str = "dispatched") -> list[WorkOrder]:
    """Work orders of the staff member's departments (or one of them), the first due on top."""
    mine = departments.department_ids_of(staff=staff)
    if department_id is not None:
        if department_id not in mine and staff.role != "admin":
            raise NotFound("部门不存在", code="department_not_found")
        departments.get_department(department_id=department_id, street_id=staff.street_id)
        mine = {department_id}
    if not mine:
        return []
    return list(db.session.scalars(
        select(WorkOrder).where(WorkOrder.department_id.in_(mine), WorkOrder.street_id == staff.street_id,
                                WorkOrder.state == state)
        .order_by(WorkOrder.handling_due_at, WorkOrder.id)
    ))


def breached_orders_for(*, staff: Staff) -> list[WorkOrder] | None:
    """The street's dispatched work orders past a limit when `staff` is a team lead (who may lead no department, and
    to whom a breach in a department without a lead with a phone comes by SMS or by this list alone); None for
    anyone else."""
    if staff.role != "admin":
        return None
    return list(db.session.scalars(
        select(WorkOrder).join(Ticket, Ticket.id == WorkOrder.ticket_id)
        .where(WorkOrder.street_id == staff.street_id, WorkOrder.state == "dispatched", Ticket.status.in_(OPEN),
               WorkOrder.response_breached.is_(True) | WorkOrder.handling_breached.is_(True))
        .order_by(WorkOrder.handling_due_at, WorkOrder.id)
    ))


def returned_orders(*, street_id: int) -> list[WorkOrder]:
    return list(db.session.scalars(
        select(WorkOrder).where(WorkOrder.street_id == street_id, WorkOrder.state == "returned")
        .order_by(WorkOrder.id)
    ))


def department_name(department_id: int) -> str:
    department = db.session.get(WorkDepartment, department_id)
    return department.name if department else "-"
