"""SQL building blocks the reports share, written once for PostgreSQL and SQLite.

Every report aggregates in the database; these helpers hide the two places where the dialects differ
(calendar days in Asia/Shanghai, durations) and give percentiles that agree on both.
"""
from __future__ import annotations

from sqlalchemy import Date, Float, Integer, and_, case, cast, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from app.core.extensions import db
from app.models import Community, Resident, Street


class local_day(FunctionElement):
    """The Asia/Shanghai calendar day of a UTC timestamp column, typed as a date on both dialects."""

    type = Date()
    inherit_cache = True
    name = "local_day"


# Shanghai has kept UTC+8 without daylight saving since 1991, so a fixed shift is exact on both
# dialects; on PostgreSQL it is also a third cheaper per row than a named zone's rules (measured on a
# year of messages, see docs/reports.md).
@compiles(local_day, "postgresql")
def _local_day_pg(element, compiler, **kw):
    (arg,) = element.clauses
    return f"CAST(({compiler.process(arg, **kw)} AT TIME ZONE 'UTC') + INTERVAL '8 hours' AS DATE)"


@compiles(local_day)
def _local_day_sqlite(element, compiler, **kw):
    (arg,) = element.clauses
    return f"date({compiler.process(arg, **kw)}, '+8 hours')"


class seconds_between(FunctionElement):
    """`later - earlier` in seconds (a float); NULL when either is NULL."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element, compiler, **kw):
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between)
def _seconds_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def scoped_resident_ids(scope):
    """Residents whose requests the scope's street answers (optionally one community of it).

    A resident who has not registered a community is served by the first street (as
    services.identities.street_of decides), so they count for that street and for no community.
    The first street is looked up beforehand rather than folded into a COALESCE: PostgreSQL cannot
    estimate a COALESCE and, misjudging the residents as few, walked a year of messages by index.
    """
    if scope.community_id is not None:
        return select(Resident.id).where(Resident.community_id == scope.community_id)
    in_street = select(Community.id).where(Community.street_id == scope.street_id)
    condition = Resident.community_id.in_(in_street)
    if db.session.scalar(select(func.min(Street.id))) == scope.street_id:
        condition = or_(condition, Resident.community_id.is_(None))
    return select(Resident.id).where(condition)


def ratio(part, whole) -> float | None:
    """A share rounded for display; None (shown as "—") rather than a misleading 0 when nothing happened."""
    return round(part / whole, 4) if whole else None


def count_if(condition) -> ColumnElement:
    """COUNT(*) FILTER (WHERE ...) in a form both dialects accept."""
    return func.sum(case((condition, 1), else_=0))


def percentiles(*, value, where, group=None, ps=(0.5, 0.9)) -> dict:
    """Continuous percentiles (PostgreSQL's percentile_cont semantics) of `value` per `group`.

    Returns {group: {"n": count, "p50": v, "p90": v}} over rows where `value` is not NULL; with no
    group, the one key is None. PostgreSQL computes them natively; elsewhere the rows are ranked with
    window functions and the two neighbouring ranks interpolated, which gives the same numbers.
    """
    where = and_(*where, value.is_not(None))
    keys = [f"p{round(p * 100)}" for p in ps]
    grouped = group is not None
    if is_postgres():
        stmt = (select(*([group.label("g")] if grouped else []), func.count().label("n"),
                       *[func.percentile_cont(p).within_group(value).label(k) for p, k in zip(ps, keys)])
                .where(where))
        if grouped:
            stmt = stmt.group_by(group)
        return {(r.g if grouped else None): {"n": r.n, **{k: _round(getattr(r, k)) for k in keys}}
                for r in db.session.execute(stmt) if r.n}
    partition = {"partition_by": group} if grouped else {}
    ranked = (select(*([group.label("g")] if grouped else []), value.label("v"),
                     func.row_number().over(order_by=value, **partition).label("rn"),
                     func.count().over(**partition).label("n"))
              .where(where).subquery())
    columns = []
    for p, k in zip(ps, keys):
        position = (ranked.c.n - 1) * p  # 0-based fractional rank
        below = cast(position, Integer)  # truncation is floor here: position >= 0
        columns += [func.max(case((ranked.c.rn == below + 1, ranked.c.v))).label(f"{k}_lo"),
                    func.max(case((ranked.c.rn == below + 2, ranked.c.v))).label(f"{k}_hi"),
                    func.max(position - below).label(f"{k}_frac")]
    stmt = select(*([ranked.c.g] if grouped else []), func.max(ranked.c.n).label("n"), *columns)
    if grouped:
        stmt = stmt.group_by(ranked.c.g)
    out = {}
    for r in db.session.execute(stmt):  # one row per group, not per ticket
        if not r.n:
            continue
        figures = out[r.g if grouped else None] = {"n": r.n}
        for k in keys:
            lo, hi, frac = getattr(r, f"{k}_lo"), getattr(r, f"{k}_hi"), getattr(r, f"{k}_frac")
            figures[k] = _round(lo if hi is None else lo + (hi - lo) * frac)
    return out


def _round(seconds) -> float | None:
    return None if seconds is None else round(float(seconds), 1)


def in_range(column, scope):
    lo, hi = scope.utc_bounds
    return and_(column >= lo, column < hi)
