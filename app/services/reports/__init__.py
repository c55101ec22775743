"""Insights for the team lead: one function per report, each aggregating in SQL over a Scope.

A Scope is the street the admin belongs to, an inclusive range of Asia/Shanghai days and optionally one
community. Each report module offers `report(*, scope) -> dict` (what the charts draw) and
`sections(data) -> list[Section]` (the same figures as tables, for the CSV download).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Community
from app.models.base import utcnow
from app.services.reports import replica
from app.services.reports.departments import department_figures  # noqa: F401  (the console's departments page)
from app.services.reports.intents import classify_later  # noqa: F401  (the conversations domain queues intents)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_DAYS = 30
MAX_DAYS = 366  # a year is what the benchmark proves stays fast
# Days a report may name: the calendar's own ends (years 1 and 9999) overflow the UTC bounds of a Shanghai day.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)


@dataclass(frozen=True)
class Scope:
    street_id: int
    start: date  # first Shanghai day, inclusive
    end: date  # last Shanghai day, inclusive
    community_id: int | None = None

    @property
    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00, day after end 00:00) in Shanghai, as UTC: a half-open range indexes well."""
        lo = datetime.combine(self.start, time(0), SHANGHAI).astimezone(timezone.utc)
        hi = datetime.combine(self.end + timedelta(days=1), time(0), SHANGHAI).astimezone(timezone.utc)
        return lo, hi

    @property
    def days(self) -> list[str]:
        return [(self.start + timedelta(days=i)).isoformat() for i in range((self.end - self.start).days + 1)]


def build_scope(*, street_id: int, start: date | None = None, end: date | None = None,
                community_id: int | None = None, now: datetime | None = None) -> Scope:
    """The scope an admin asked for; the last 30 days by default; a community of another street is not found."""
    today = (now or utcnow()).astimezone(SHANGHAI).date()
    end = end or today
    if any(day is not None and not EARLIEST_DAY <= day <= LATEST_DAY for day in (start, end)):
        raise ValidationFailed(f"日期须在 {EARLIEST_DAY} 至 {LATEST_DAY} 之间", code="invalid_range")
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ValidationFailed("开始日期不能晚于结束日期", code="invalid_range")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationFailed(f"日期范围最多 {MAX_DAYS} 天", code="invalid_range")
    if community_id is not None:
        street_of_community = db.session.scalar(select(Community.street_id).where(Community.id == community_id))
        if street_of_community != street_id:
            # The same answer for "no such community" and "another street's": nothing leaks.
            raise NotFound("社区不存在", code="community_not_found")
    return Scope(street_id=street_id, start=start, end=end, community_id=community_id)


def communities(*, street_id: int) -> list[Community]:
    """The communities an admin may filter by."""
    return list(db.session.scalars(select(Community).where(Community.street_id == street_id)
                                   .order_by(Community.name)))


def _registry():
    from app.services.reports import appointments, bot, departments, help_alerts, outcome, speed, volume

    return {"volume": volume, "speed": speed, "outcome": outcome, "bot": bot, "help": help_alerts,
            "appointments": appointments, "departments": departments}


TITLES = {"volume": "业务量", "speed": "响应速度", "outcome": "办理结果", "bot": "机器人", "help": "一键求助",
          "appointments": "预约挂号", "departments": "部门办理"}


def run(*, name: str, scope: Scope) -> dict:
    """One report's figures; an unknown name is NotFound."""
    module = _registry().get(name)
    if module is None:
        raise NotFound("没有这个报表", code="report_not_found")
    with replica.reading():
        data = module.report(scope=scope)
        community = (db.session.scalar(select(Community.name).where(Community.id == scope.community_id))
                     if scope.community_id is not None else None)
    return {"report": name, "title": TITLES[name], "start": scope.start.isoformat(), "end": scope.end.isoformat(),
            "community_id": scope.community_id, "community": community, **data}


def sections(*, name: str, data: dict):
    """The figures of `run` as titled tables, in the order the CSV shows them."""
    return _registry()[name].sections(data)


def to_csv(*, name: str, data: dict) -> str:
    """The report as CSV text (BOM first), headed by its title and filters."""
    from app.services.reports.export import to_csv as write

    scope_line = f"{data['start']} 至 {data['end']}" + (f"，{data['community']}" if data["community"] else "，全部社区")
    return write(title=data["title"], scope_line=scope_line, sections=sections(name=name, data=data))
