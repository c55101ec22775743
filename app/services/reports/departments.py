"""Per-department figures of work orders (issue 21): dispatched, done on time, overdue, reopened by a follow-up,
and the follow-ups' satisfaction. Shown on the console's departments page; one GROUP BY per figure family."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, or_, select

from app.core.extensions import db
from app.models import FollowUp, WorkDepartment, WorkOrder


def department_figures(*, street_id: int, since: datetime | None = None) -> list[dict]:
    """One row per active department of the street; `since` counts work orders dispatched from then on."""
    overdue = or_(WorkOrder.response_breached.is_(True), WorkOrder.handling_breached.is_(True))
    in_period = [WorkOrder.dispatched_at >= since] if since is not None else []
    orders = {row.department_id: row for row in db.session.execute(
        select(WorkOrder.department_id, func.count(WorkOrder.id).label("dispatched"),
               func.sum(case((and_(WorkOrder.state == "done", ~overdue), 1), else_=0)).label("on_time"),
               func.sum(case((overdue, 1), else_=0)).label("overdue"),
               func.sum(case((WorkOrder.reopened > 0, 1), else_=0)).label("reopened"))
        .where(WorkOrder.street_id == street_id, *in_period).group_by(WorkOrder.department_id))}
    ratings = {row.department_id: row for row in db.session.execute(
        select(WorkOrder.department_id, func.count(FollowUp.id).label("answered"),
               func.avg(FollowUp.satisfaction).label("satisfaction"),
               func.sum(case((FollowUp.solved.is_(True), 1), else_=0)).label("solved"))
        .join(FollowUp, FollowUp.work_order_id == WorkOrder.id)
        .where(WorkOrder.street_id == street_id, FollowUp.status == "answered", *in_period)
        .group_by(WorkOrder.department_id))}
    rows = []
    for department in db.session.scalars(select(WorkDepartment).where(
            WorkDepartment.street_id == street_id, WorkDepartment.active.is_(True)).order_by(WorkDepartment.name)):
        o, r = orders.get(department.id), ratings.get(department.id)
        rows.append({
            "department_id": department.id, "name": department.name,
            "dispatched": o.dispatched if o else 0, "on_time": int(o.on_time or 0) if o else 0,
            "overdue": int(o.overdue or 0) if o else 0, "reopened": int(o.reopened or 0) if o else 0,
            "followups_answered": r.answered if r else 0, "solved": int(r.solved or 0) if r else 0,
            "satisfaction": round(float(r.satisfaction), 2) if r and r.satisfaction is not None else None,
        })
    return rows
