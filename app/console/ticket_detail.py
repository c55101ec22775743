"""One ticket: its timeline, the reply box, notes, status, priority and assignment controls."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.console.blueprint import bp
from app.console.queue import PRIORITY_LABELS
from app.core import photo_storage
from app.core.errors import ValidationFailed
from app.models.tickets import TICKET_PRIORITIES
from app.services import tickets, workorders


def _back(ticket_id: int):
    return redirect(url_for("console.ticket_page", ticket_id=ticket_id))


@bp.get("/tickets/<int:ticket_id>")
def ticket_page(ticket_id: int):
    ticket = tickets.get_ticket(ticket_id=ticket_id, staff=current_user)
    return render_template(
        "console/ticket.html", ticket=ticket, entries=tickets.timeline(ticket_id=ticket_id, staff=current_user),
        photos=tickets.ticket_photos(ticket_id=ticket_id, staff=current_user),
        canned=tickets.canned_replies(street_id=current_user.street_id),
        staff_list=tickets.street_staff(street_id=current_user.street_id),
        priorities=TICKET_PRIORITIES, priority_labels=PRIORITY_LABELS, status_labels=tickets.STATUS_LABELS,
    )


@bp.get("/tickets/<int:ticket_id>/photos/<int:photo_id>")
def ticket_photo(ticket_id: int, photo_id: int):
    """A photo the resident sent with the request behind the ticket: staff of the ticket's street only."""
    row, data = tickets.ticket_photo_content(ticket_id=ticket_id, photo_id=photo_id, staff=current_user)
    # Not kept by the browser either: the console runs on shared office computers.
    return photo_storage.photo_response(data, row.content_type, cache="no-store")


@bp.get("/tickets/<int:ticket_id>/timeline")
def ticket_timeline(ticket_id: int):
    """The timeline alone, fetched every few seconds by console.js."""
    ticket = tickets.get_ticket(ticket_id=ticket_id, staff=current_user)
    return render_template("console/_timeline.html", ticket=ticket, status_labels=tickets.STATUS_LABELS,
                           entries=tickets.timeline(ticket_id=ticket_id, staff=current_user))


@bp.post("/tickets/<int:ticket_id>/reply")
def ticket_reply(ticket_id: int):
    tickets.reply(ticket_id=ticket_id, staff_id=current_user.id, body=request.form.get("body", ""),
                  wait_for_resident=request.form.get("then") == "pending")
    flash("回复已发送", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/note")
def ticket_note(ticket_id: int):
    tickets.add_note(ticket_id=ticket_id, staff_id=current_user.id, body=request.form.get("body", ""))
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/claim")
def ticket_claim(ticket_id: int):
    tickets.claim(ticket_id=ticket_id, staff_id=current_user.id)
    flash("已认领", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/assign")
def ticket_assign(ticket_id: int):
    raw = request.form.get("assignee_id", "")
    try:
        assignee_id = int(raw) if raw else None
    except ValueError as exc:
        raise ValidationFailed("请选择工作人员") from exc
    tickets.assign(ticket_id=ticket_id, staff_id=current_user.id, assignee_id=assignee_id,
                   reason=request.form.get("reason", ""))
    flash("已转派", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/status")
def ticket_status(ticket_id: int):
    status = request.form.get("status", "")
    # Through the work orders: a dispatched ticket's work order follows its ticket (resolved, reopened).
    workorders.set_ticket_status(ticket_id=ticket_id, staff_id=current_user.id, status=status)
    flash(f"状态已改为“{tickets.STATUS_LABELS.get(status, status)}”", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/priority")
def ticket_priority(ticket_id: int):
    tickets.set_priority(ticket_id=ticket_id, staff_id=current_user.id, priority=request.form.get("priority", ""))
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/category")
def ticket_category(ticket_id: int):
    tickets.set_category(ticket_id=ticket_id, staff_id=current_user.id, category=request.form.get("category", ""))
    return _back(ticket_id)
