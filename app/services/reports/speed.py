"""Speed: first-response and resolution times (median, 90th percentile) per priority, SLA compliance,
and the breached tickets themselves, for tickets opened in the scope."""
from __future__ import annotations

from sqlalchemy import func, or_, select

from app.core.extensions import db
from app.models import Staff, Ticket
from app.models.tickets import TICKET_PRIORITIES
from app.services.reports._sql import count_if, percentiles, ratio, seconds_between
from app.services.reports.export import Section, minutes, percent
from app.services.reports.volume import ticket_filter
from app.services.tickets import CATEGORY_LABELS

PRIORITY_LABELS = {"low": "低", "normal": "普通", "high": "高", "urgent": "紧急"}
BREACH_LIST_LIMIT = 100


def report(*, scope) -> dict:
    where = ticket_filter(scope)
    first = percentiles(value=seconds_between(Ticket.first_responded_at, Ticket.created_at),
                        group=Ticket.priority, where=where)
    # Reopening clears resolved_at, so only tickets resolved now (or closed after resolving) count here.
    resolution = percentiles(value=seconds_between(Ticket.resolved_at, Ticket.created_at),
                             group=Ticket.priority, where=where)
    sla = _sla(where)
    by_priority = []
    for priority in TICKET_PRIORITIES:  # four fixed rows, merged from the three grouped queries
        s = sla.get(priority, {"tickets": 0, "first_breached": 0, "resolution_breached": 0, "any_breached": 0})
        by_priority.append({
            "priority": priority, "label": PRIORITY_LABELS[priority], "tickets": s["tickets"],
            "first_response": first.get(priority, {"n": 0, "p50": None, "p90": None}),
            "resolution": resolution.get(priority, {"n": 0, "p50": None, "p90": None}),
            "first_response_breached": s["first_breached"], "resolution_breached": s["resolution_breached"],
            "sla_compliance": ratio(s["tickets"] - s["any_breached"], s["tickets"]),
        })
    total = sum(p["tickets"] for p in by_priority)
    breached = sum(s["any_breached"] for s in sla.values())
    return {"by_priority": by_priority, "tickets": total, "breached": breached,
            "sla_compliance": ratio(total - breached, total), "breaches": _breaches(where),
            "category_labels": CATEGORY_LABELS}


def _sla(where) -> dict:
    any_breach = or_(Ticket.first_response_breached, Ticket.resolution_breached)
    stmt = (select(Ticket.priority, func.count().label("tickets"),
                   count_if(Ticket.first_response_breached).label("first_breached"),
                   count_if(Ticket.resolution_breached).label("resolution_breached"),
                   count_if(any_breach).label("any_breached"))
            .where(*where).group_by(Ticket.priority))
    return {r.priority: r._asdict() for r in db.session.execute(stmt)}


def _breaches(where) -> list[dict]:
    stmt = (select(Ticket.id, Ticket.subject, Ticket.priority, Ticket.category, Ticket.status, Ticket.created_at,
                   Ticket.first_response_breached, Ticket.resolution_breached, Staff.display_name)
            .outerjoin(Staff, Staff.id == Ticket.assignee_id)
            .where(*where, or_(Ticket.first_response_breached, Ticket.resolution_breached))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(BREACH_LIST_LIMIT))
    return [{"id": r.id, "subject": r.subject, "priority": r.priority, "category": r.category, "status": r.status,
             "created_at": r.created_at.isoformat(), "first_response_breached": r.first_response_breached,
             "resolution_breached": r.resolution_breached, "assignee": r.display_name}
            for r in db.session.execute(stmt)]


def sections(data: dict) -> list[Section]:
    rows = [[p["label"], p["tickets"], minutes(p["first_response"]["p50"]), minutes(p["first_response"]["p90"]),
             minutes(p["resolution"]["p50"]), minutes(p["resolution"]["p90"]), p["first_response_breached"],
             p["resolution_breached"], percent(p["sla_compliance"])] for p in data["by_priority"]]
    rows.append(["合计", data["tickets"], "", "", "", "", "", "", percent(data["sla_compliance"])])
    return [
        Section("按优先级", ["优先级", "工单数", "首次响应中位数（分钟）", "首次响应P90（分钟）", "解决用时中位数（分钟）",
                          "解决用时P90（分钟）", "首次响应超时", "解决超时", "SLA达标率"], rows),
        Section("超时工单", ["工单号", "标题", "优先级", "类别", "状态", "创建时间(UTC)", "首次响应超时", "解决超时", "处理人"],
                [[b["id"], b["subject"], PRIORITY_LABELS.get(b["priority"], b["priority"]),
                  data["category_labels"].get(b["category"], b["category"]), b["status"],
                  b["created_at"], "是" if b["first_response_breached"] else "", "是" if b["resolution_breached"] else "",
                  b["assignee"] or ""] for b in data["breaches"]]),
    ]
