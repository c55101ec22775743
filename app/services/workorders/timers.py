"""The timers of dispatched work orders: a warning before a limit (超期预警), a breach after it, and one SMS to the
department's lead per breached work order (to the street's team leads when the department has no lead with a phone;
when nobody has one, that is recorded once and not asked again).

Each mark is a compare-and-set on its flag, so two sweeps at once warn and breach once. The lead's SMS is its own
job: it claims `lead_texted_at` before sending (a retried or doubled job finds the claim and sends nothing) and gives
the claim back when no SMS went out, so the next try (the job's retry or the sweep) sends it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import and_, select, update

from app.core import tasks
from app.core.config import setting
from app.core.extensions import db
from app.models import Staff, Ticket, WorkOrder, WorkOrderDispatch
from app.models.base import utcnow
from app.services import outbox
from app.services.workorders.orders import event, mark_turn

log = logging.getLogger(__name__)

LABELS = {"response": "响应", "handling": "办理"}
OPEN_TICKETS = ("open", "pending")  # a resolved ticket stops its timers, whichever path resolved it


class LeadNotTexted(Exception):
    """No SMS reached the lead this time; the job's retry tries again."""


def _rules(now: datetime, warn_before: timedelta):
    due = {"response": WorkOrder.response_due_at, "handling": WorkOrder.handling_due_at}
    pending = {"response": WorkOrder.responded_at.is_(None), "handling": WorkOrder.done_at.is_(None)}
    flags = {("response", "warning"): WorkOrder.response_warned, ("handling", "warning"): WorkOrder.handling_warned,
             ("response", "breach"): WorkOrder.response_breached, ("handling", "breach"): WorkOrder.handling_breached}
    for target in ("response", "handling"):
        yield target, "breach", flags[(target, "breach")], and_(pending[target], due[target] < now)
        yield target, "warning", flags[(target, "warning")], and_(pending[target], due[target] >= now,
                                                                   due[target] < now + warn_before)


def sweep(*, now: datetime | None = None) -> list[tuple[int, str, str]]:
    """Mark newly warned and breached work orders; (work order id, target, "warning"|"breach") for each mark."""
    now = now or utcnow()
    warn_before = timedelta(minutes=setting("WORKORDER_WARN_BEFORE_MINUTES"))
    marked = []
    for target, mark, flag, condition in _rules(now, warn_before):
        ids = db.session.scalars(select(WorkOrder.id).join(Ticket, Ticket.id == WorkOrder.ticket_id).where(
            WorkOrder.state == "dispatched", Ticket.status.in_(OPEN_TICKETS), flag.is_(False), condition)).all()
        for order_id in ids:
            values = {flag.key: True}
            if mark == "breach":  # a breach without a warning first (the sweep was down) needs no late warning
                values[f"{target}_warned"] = True
            if db.session.execute(update(WorkOrder).where(WorkOrder.id == order_id, flag.is_(False))
                                  .values(values).execution_options(synchronize_session=False)).rowcount:
                if mark == "breach":  # the turn's record keeps it when the next turn's timers start afresh
                    mark_turn(order_id, **{f"{target}_breached": True})
                _record(order_id, target, mark, now)
                marked.append((order_id, target, mark))
        db.session.commit()
    for order_id in _untexted_breaches():
        tasks.later("workorders.text_lead", work_order_id=order_id, job_id=f"workorder-lead-sms-{order_id}",
                    retry=Retry(max=5, interval=[30, 60, 300, 900, 3600]))
    return marked


def _record(order_id: int, target: str, mark: str, now: datetime) -> None:
    order = db.session.get(WorkOrder, order_id)
    due = order.response_due_at if target == "response" else order.handling_due_at
    name = order.department.name
    if mark == "warning":
        body = f"超期预警：“{name}”{LABELS[target]}时限将于 {_local(due)} 到期"
    else:
        # What happened so far only: who is texted, or that nobody could be, is its own event (text_lead).
        body = f"已超时：“{name}”未在 {_local(due)} 前完成{LABELS[target]}"
    event(order.ticket_id, f"{mark}", body, staff_id=None, now=now, target=target, due_at=due.isoformat(),
          department_id=order.department_id)


def _local(value: datetime) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(setting("TIMEZONE"))).strftime("%m-%d %H:%M")


def _untexted_breaches() -> list[int]:
    return list(db.session.scalars(select(WorkOrder.id).where(
        WorkOrder.state == "dispatched", WorkOrder.lead_texted_at.is_(None),
        (WorkOrder.response_breached.is_(True)) | (WorkOrder.handling_breached.is_(True)))))


def _recipients(order: WorkOrder) -> tuple[list[Staff], bool]:
    """Who hears of the breach: the department's lead, or when it has none with a phone, the street's team leads
    (admins) with one; and whether it is the department's lead."""
    lead = db.session.get(Staff, order.department.lead_id) if order.department.lead_id else None
    if lead is not None and lead.active and lead.phone:
        return [lead], True
    return list(db.session.scalars(select(Staff).where(
        Staff.street_id == order.street_id, Staff.role == "admin", Staff.active.is_(True), Staff.phone.is_not(None),
        Staff.phone != "").order_by(Staff.id))), False


def _claim(work_order_id: int, now: datetime) -> bool:
    claimed = db.session.execute(
        update(WorkOrder).where(WorkOrder.id == work_order_id, WorkOrder.lead_texted_at.is_(None))
        .values(lead_texted_at=now).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(claimed)


def text_lead(*, work_order_id: int, now: datetime | None = None) -> str | None:
    """SMS the department's lead (else the street's team leads) about a breached work order, once; the route it
    went, or None (nothing to send, or nobody to send it to: that is on the timeline, and not asked again)."""
    now = now or utcnow()
    order = db.session.get(WorkOrder, work_order_id)
    if order is None or order.state != "dispatched" or not (order.response_breached or order.handling_breached):
        return None
    recipients, is_lead = _recipients(order)
    if not _claim(work_order_id, now):
        return None  # texted already (a retried or doubled job)
    if not recipients:
        # Claimed for good: asking again every minute would reach nobody more. The console's breached list shows it.
        db.session.execute(update(WorkOrder).where(WorkOrder.id == work_order_id)
                           .values(lead_text_route="nobody").execution_options(synchronize_session=False))
        event(order.ticket_id, "lead_untexted", f"“{order.department.name}”没有登记手机的负责人，本街道组长也都没有"
              "登记手机，超时无人可短信通知，请在“部门”页指定负责人", staff_id=None, now=now)
        db.session.commit()
        log.warning("work order %s breached and nobody has a phone to be texted", work_order_id)
        return None
    target = "办理" if order.handling_breached else "响应"
    body = (f"【邻里工单超时】工单#{order.ticket_id}“{order.ticket.subject[:30]}”已超过{target}时限，"
            f"请尽快督办（部门：{order.department.name}）。")
    # Per turn and person: a transfer's or reopening's breach is news, and each team lead gets their own.
    turn = db.session.scalar(select(WorkOrderDispatch.id).where(WorkOrderDispatch.work_order_id == order.id,
                                                                WorkOrderDispatch.outcome == "open"))
    reached = []
    for person in recipients:
        route = outbox.notify_contact(openid=None, phone=person.phone, template="ticket_followup",
                                      fields={"ticket": str(order.ticket_id)}, body=body,
                                      dedup_key=f"workorder-breach:{order.id}:{turn}:{person.id}")
        if route != "none":
            reached.append((person, route))
    if not reached:
        db.session.execute(update(WorkOrder).where(WorkOrder.id == work_order_id)
                           .values(lead_texted_at=None).execution_options(synchronize_session=False))
        db.session.commit()
        raise LeadNotTexted(f"no SMS reached the lead of work order {work_order_id}")
    route = reached[0][1]
    db.session.execute(update(WorkOrder).where(WorkOrder.id == work_order_id)
                       .values(lead_text_route=route).execution_options(synchronize_session=False))
    names = "、".join(person.display_name for person, _ in reached)
    body = (f"已短信通知部门负责人{names}" if is_lead
            else f"“{order.department.name}”没有登记手机的负责人，已短信通知组长{names}")
    event(order.ticket_id, "lead_texted", body, staff_id=None, now=now, route=route,
          lead_id=reached[0][0].id, notified=[person.id for person, _ in reached])
    db.session.commit()
    return route
