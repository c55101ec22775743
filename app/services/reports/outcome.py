"""Outcome: how many tickets opened in the scope were resolved, how many came back, and how residents
rated the service (CSAT 1-5, asked once per ticket when it is resolved)."""
from __future__ import annotations

from sqlalchemy import func, or_, select

from app.core.extensions import db
from app.models import Ticket
from app.services.reports._sql import count_if, local_day, ratio
from app.services.reports.export import Section, percent
from app.services.reports.volume import ticket_filter

RESOLVED = ("resolved", "closed")
SATISFIED = 4  # a score of 4 or 5 counts as satisfied, the usual CSAT convention


def report(*, scope) -> dict:
    where = ticket_filter(scope)
    totals = db.session.execute(
        select(func.count().label("tickets"),
               count_if(Ticket.status.in_(RESOLVED)).label("resolved"),
               count_if(Ticket.reopened_count > 0).label("reopened"),
               # Reopening clears the resolution, so "ever resolved" is resolved now or reopened since.
               count_if(or_(Ticket.status.in_(RESOLVED), Ticket.reopened_count > 0)).label("ever_resolved"))
        .where(*where)).one()
    scores = dict(db.session.execute(
        select(Ticket.csat_score, func.count()).where(*where, Ticket.csat_score.is_not(None))
        .group_by(Ticket.csat_score)).all())
    rated = sum(scores.values())
    day = local_day(Ticket.created_at)
    trend = [{"day": r.day.isoformat(), "rated": r.rated, "average": round(float(r.average), 2),
              "satisfied": ratio(r.satisfied, r.rated)}
             for r in db.session.execute(
                 select(day.label("day"), func.count().label("rated"), func.avg(Ticket.csat_score).label("average"),
                        count_if(Ticket.csat_score >= SATISFIED).label("satisfied"))
                 .where(*where, Ticket.csat_score.is_not(None)).group_by(day).order_by(day))]
    return {
        "tickets": totals.tickets, "resolved": totals.resolved or 0, "reopened": totals.reopened or 0,
        "resolution_rate": ratio(totals.resolved or 0, totals.tickets),
        "reopen_rate": ratio(totals.reopened or 0, totals.ever_resolved or 0),
        "csat": {
            "distribution": [{"score": s, "count": scores.get(s, 0)} for s in range(1, 6)],
            "rated": rated,
            "average": round(sum(s * n for s, n in scores.items()) / rated, 2) if rated else None,
            "satisfied": ratio(sum(n for s, n in scores.items() if s >= SATISFIED), rated),
            "response_rate": ratio(rated, totals.resolved or 0),
        },
        "trend": trend,
    }


def sections(data: dict) -> list[Section]:
    csat = data["csat"]
    return [
        Section("办理结果", ["工单数", "已解决", "解决率", "被重新打开", "重开率", "评分数", "平均分", "满意率（4-5分）"],
                [[data["tickets"], data["resolved"], percent(data["resolution_rate"]), data["reopened"],
                  percent(data["reopen_rate"]), csat["rated"], csat["average"] or "", percent(csat["satisfied"])]]),
        Section("评分分布", ["分数", "数量"], [[d["score"], d["count"]] for d in csat["distribution"]]),
        Section("评分趋势", ["日期", "评分数", "平均分", "满意率"],
                [[t["day"], t["rated"], t["average"], percent(t["satisfied"])] for t in data["trend"]]),
    ]
