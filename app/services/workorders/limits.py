"""Time limits of a work order (response, handling) per street, category and priority.

A street's row of work_order_time_limits for (category, priority) wins, then its category's row for every priority
(priority NULL), then the settings WORKORDER_RESPONSE_MINUTES / WORKORDER_HANDLING_MINUTES. Each street's team lead
sets only their street's rows: another street's deadlines are none of theirs."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select

from app.core.config import setting
from app.core.errors import Forbidden, ValidationFailed
from app.core.extensions import db
from app.models import Staff, WorkOrderTimeLimit
from app.models.tickets import TICKET_PRIORITIES


def limits_for(*, street_id: int, category: str, priority: str) -> tuple[timedelta, timedelta]:
    rows = db.session.scalars(select(WorkOrderTimeLimit).where(
        WorkOrderTimeLimit.street_id == street_id, WorkOrderTimeLimit.category == category,
        or_(WorkOrderTimeLimit.priority == priority, WorkOrderTimeLimit.priority.is_(None)))).all()
    row = next((r for r in rows if r.priority == priority), None) or next(iter(rows), None)
    if row is None:
        return (timedelta(minutes=setting("WORKORDER_RESPONSE_MINUTES")),
                timedelta(minutes=setting("WORKORDER_HANDLING_MINUTES")))
    return timedelta(minutes=row.response_minutes), timedelta(minutes=row.handling_minutes)


def all_limits(*, street_id: int) -> list[WorkOrderTimeLimit]:
    return list(db.session.scalars(select(WorkOrderTimeLimit).where(WorkOrderTimeLimit.street_id == street_id)
                                   .order_by(WorkOrderTimeLimit.category, WorkOrderTimeLimit.priority)))


def set_limit(*, actor: Staff, category: str, priority: str | None, response_minutes: int,
              handling_minutes: int) -> WorkOrderTimeLimit:
    """A team lead sets (or changes) a category's limits of their own street; they apply to work orders dispatched
    from now on."""
    if actor.role != "admin":
        raise Forbidden("只有组长可以设置时限", code="admin_only")
    category = (category or "").strip()[:30]
    priority = priority or None
    if not category:
        raise ValidationFailed("请填写分类", code="invalid_category")
    if priority is not None and priority not in TICKET_PRIORITIES:
        raise ValidationFailed("未知的优先级", code="invalid_priority")
    if not 0 < response_minutes <= handling_minutes:
        raise ValidationFailed("响应时限须大于0且不超过办理时限", code="invalid_limits")
    row = db.session.scalar(select(WorkOrderTimeLimit).where(
        WorkOrderTimeLimit.street_id == actor.street_id, WorkOrderTimeLimit.category == category,
        WorkOrderTimeLimit.priority.is_(None) if priority is None else WorkOrderTimeLimit.priority == priority))
    if row is None:
        row = WorkOrderTimeLimit(street_id=actor.street_id, category=category, priority=priority)
        db.session.add(row)
    row.response_minutes, row.handling_minutes = response_minutes, handling_minutes
    db.session.commit()
    return row
