"""The ticket queue: views (mine, unassigned, all open, breached, resolved) with filters and counts."""
from __future__ import annotations

from flask import jsonify, render_template, request, url_for
from flask_login import current_user

from app.console.blueprint import bp
from app.models.tickets import TICKET_PRIORITIES
from app.services import tickets

VIEW_LABELS = {"mine": "我的", "unassigned": "未分配", "open": "全部处理中", "breached": "已超时", "resolved": "已解决"}
PRIORITY_LABELS = {"urgent": "紧急", "high": "高", "normal": "普通", "low": "低"}
# The query parameters _filters() reads. Only these go on to the polling URL: a parameter named like one of url_for's
# own arguments (endpoint, _external, _anchor...) would otherwise break or redirect it.
FILTER_PARAMS = ("view", "priority", "category", "status", "q")


def _filters() -> dict:
    view = request.args.get("view", "mine")
    if view not in tickets.VIEWS:
        view = "mine"
    priority = request.args.get("priority") or None
    return {
        "view": view,
        "priority": priority if priority in TICKET_PRIORITIES else None,
        "category": (request.args.get("category") or None),
        "status": request.args.get("status") if request.args.get("status") in ("open", "pending") else None,
        "search": (request.args.get("q") or "").strip()[:50] or None,
    }


def _rows(filters: dict) -> dict:
    items = tickets.queue(staff=current_user, **filters)
    return {"tickets": items, "waiting": tickets.awaiting_reply(ticket_ids=[t.id for t in items])}


@bp.get("/queue")
def queue_page():
    filters = _filters()
    return render_template(
        "console/queue.html", filters=filters, counts=tickets.queue_counts(staff=current_user),
        view_labels=VIEW_LABELS, priority_labels=PRIORITY_LABELS,
        poll_url=url_for("console.queue_rows", **{k: v for k in FILTER_PARAMS if (v := request.args.get(k))}),
        categories=tickets.categories(street_id=current_user.street_id), **_rows(filters),
    )


@bp.get("/queue/rows")
def queue_rows():
    """The table body alone, fetched every few seconds by console.js."""
    return render_template("console/_queue_rows.html", priority_labels=PRIORITY_LABELS, **_rows(_filters()))


@bp.get("/api/counts")
def queue_counts():
    return jsonify(tickets.queue_counts(staff=current_user))
