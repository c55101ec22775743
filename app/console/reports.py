"""Reports for the team lead (admin only): the page, one JSON endpoint per report for its charts, and
one CSV download per report. Figures come from app/services/reports; these routes only parse the
filters and serialise."""
from __future__ import annotations

from datetime import date

from flask import Response, jsonify, render_template, request, url_for
from flask_login import current_user

from app.console.access import admin_required
from app.console.blueprint import bp
from app.core.errors import ValidationFailed
from app.services import reports

REPORT_NAMES = tuple(reports.TITLES)


def _scope() -> reports.Scope:
    """The filters of the query string (start, end as YYYY-MM-DD Shanghai days; community id), always
    bound to the signed-in admin's street."""
    try:
        start, end = (date.fromisoformat(v) if (v := request.args.get(k)) else None for k in ("start", "end"))
        community = request.args.get("community") or None
        community_id = int(community) if community is not None else None
    except ValueError:
        raise ValidationFailed("日期格式应为 YYYY-MM-DD，社区应为编号", code="invalid_filter") from None
    return reports.build_scope(street_id=current_user.street_id, start=start, end=end, community_id=community_id)


def _query(scope: reports.Scope) -> dict:
    query = {"start": scope.start.isoformat(), "end": scope.end.isoformat()}
    if scope.community_id is not None:
        query["community"] = scope.community_id
    return query


@bp.get("/reports")
@admin_required
def reports_page():
    scope = _scope()
    query = _query(scope)
    links = [{"name": name, "title": reports.TITLES[name],
              "json": url_for("console.report_json", name=name, **query),
              "csv": url_for("console.report_csv", name=name, **query)} for name in REPORT_NAMES]
    return render_template("console/reports.html", scope=scope, links=links,
                           communities=reports.communities(street_id=current_user.street_id))


@bp.get("/api/reports/<name>")
@admin_required
def report_json(name: str):
    return jsonify(reports.run(name=name, scope=_scope()))


@bp.get("/reports/<name>.csv")
@admin_required
def report_csv(name: str):
    scope = _scope()
    data = reports.run(name=name, scope=scope)
    text = reports.to_csv(name=name, data=data)
    filename = f"linli-{name}-{scope.start.isoformat()}_{scope.end.isoformat()}.csv"
    return Response(text.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Content-Type": "text/csv; charset=utf-8"})
