"""Per-department figures of work orders (issue 21): each department's turns with a work order (work_order_dispatches:
a dispatch, a transfer in, a reopening), done on time, overdue, transferred on, returned, reopened by a follow-up's
"未解决" (回访重办), and the answered follow-ups (solved, satisfaction) of the turns it completed.

Counted per turn, not per work order: a work order one department let breach and another then finished in time is
overdue for the first and on time for the second, and stays so after a transfer or a reopening. Shown on the
reports page (the `departments` report, with its period) and on the console's departments page (all time)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select

from app.core.extensions import db
from app.models import FollowUp, Ticket, WorkDepartment, WorkOrder, WorkOrderDispatch
from app.services.reports._sql import count_if, scoped_resident_ids
from app.services.reports.export import Section

HEADERS = ["部门", "派单", "按时办结", "超时", "转出", "退单", "回访重办", "回访答复", "回访已解决", "满意度"]


def department_figures(*, street_id: int, since: datetime | None = None, until: datetime | None = None,
                       resident_ids=None) -> list[dict]:
    """One row per active department of the street, over the turns begun in [since, until) (all when None);
    `resident_ids` (a select) narrows to the tickets of those residents (a community)."""
    turn = WorkOrderDispatch
    where = [turn.street_id == street_id]
    if since is not None:
        where.append(turn.dispatched_at >= since)
    if until is not None:
        where.append(turn.dispatched_at < until)
    if resident_ids is not None:
        where.append(turn.work_order_id.in_(select(WorkOrder.id).join(Ticket, Ticket.id == WorkOrder.ticket_id)
                                            .where(Ticket.resident_id.in_(resident_ids))))
    overdue = or_(turn.response_breached.is_(True), turn.handling_breached.is_(True))
    turns = {row.department_id: row for row in db.session.execute(
        select(turn.department_id, func.count(turn.id).label("dispatched"),
               count_if(and_(turn.outcome == "done", ~overdue)).label("on_time"),
               count_if(overdue).label("overdue"),
               count_if(turn.outcome == "transferred").label("transferred"),
               count_if(turn.outcome == "returned").label("returned"),
               count_if(turn.opened_by == "followup").label("reopened"))
        .where(*where).group_by(turn.department_id))}
    ratings = {row.department_id: row for row in db.session.execute(
        select(turn.department_id, func.count(FollowUp.id).label("answered"),
               func.avg(FollowUp.satisfaction).label("satisfaction"),
               count_if(FollowUp.solved.is_(True)).label("solved"))
        .join(FollowUp, FollowUp.dispatch_id == turn.id)
        .where(*where, FollowUp.status == "answered")
        .group_by(turn.department_id))}
    rows = []
    for department in db.session.scalars(select(WorkDepartment).where(
            WorkDepartment.street_id == street_id, WorkDepartment.active.is_(True)).order_by(WorkDepartment.name)):
        t, r = turns.get(department.id), ratings.get(department.id)
        rows.append({
            "department_id": department.id, "name": department.name,
            "dispatched": t.dispatched if t else 0,
            **{key: int(getattr(t, key) or 0) if t else 0
               for key in ("on_time", "overdue", "transferred", "returned", "reopened")},
            "followups_answered": r.answered if r else 0, "solved": int(r.solved or 0) if r else 0,
            "satisfaction": round(float(r.satisfaction), 2) if r and r.satisfaction is not None else None,
        })
    return rows


def report(*, scope) -> dict:
    """The reports page's figures: the turns begun within the scope's days (and community)."""
    since, until = scope.utc_bounds
    residents = scoped_resident_ids(scope) if scope.community_id is not None else None
    return {"departments": department_figures(street_id=scope.street_id, since=since, until=until,
                                              resident_ids=residents)}


def sections(data: dict) -> list[Section]:
    return [Section("部门办理", HEADERS, [
        [d["name"], d["dispatched"], d["on_time"], d["overdue"], d["transferred"], d["returned"], d["reopened"],
         d["followups_answered"], d["solved"], "" if d["satisfaction"] is None else d["satisfaction"]]
        for d in data["departments"]])]
