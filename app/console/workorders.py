"""Work orders in the console: the department queue, the departments and time limits (team leads set them up), and
the ticket page's 派单 / 转办 / 退单 / 督办 / 答复 / 办结 forms. Every rule is in app/services/workorders."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.console.access import admin_required, as_bool
from app.console.blueprint import bp
from app.core import photo_storage
from app.core.errors import ValidationFailed
from app.models.tickets import TICKET_PRIORITIES
from app.services import reports, tickets, workorders


def _int(name: str) -> int:
    try:
        return int(request.form.get(name, ""))
    except ValueError as exc:
        raise ValidationFailed("请选择", code=f"invalid_{name}") from exc


def _back(ticket_id: int):
    return redirect(url_for("console.ticket_page", ticket_id=ticket_id))


@bp.app_template_global("workorder_panel")
def workorder_panel(ticket) -> dict:
    """What the ticket page's work-order card needs (ticket.html includes console/_workorder_card.html)."""
    order = workorders.work_order_of(ticket_id=ticket.id)
    mine = workorders.department_ids_of(staff=current_user)
    return {"order": order, "departments": workorders.departments_of_street(street_id=current_user.street_id),
            "is_member": order is not None and order.department_id in mine,
            "is_lead": order is not None and (current_user.role == "admin"
                                              or order.department.lead_id == current_user.id),
            "followup": workorders.latest_followup(ticket_id=ticket.id), "labels": workorders.STATE_LABELS,
            "parent": workorders.parent_of(ticket_id=ticket.id),
            "children": workorders.children_of(ticket_id=ticket.id),
            "place": workorders.place_of(ticket_id=ticket.id, staff=current_user)}


@bp.get("/tickets/<int:ticket_id>/photos/<int:photo_id>/thumb")
def ticket_photo_thumb(ticket_id: int, photo_id: int):
    """A small copy of a resident's photo for the ticket page; staff of the ticket's street only."""
    data, content_type = workorders.thumbnail(ticket_id=ticket_id, photo_id=photo_id, staff=current_user)
    return photo_storage.photo_response(data, content_type, cache="no-store")


@bp.get("/workorders")
def workorders_page():
    """The member's departments' work orders, the returned ones waiting for a dispatcher, and for team leads the
    street's breached ones."""
    return render_template("console/workorders.html", orders=workorders.department_queue(staff=current_user),
                           returned=workorders.returned_orders(street_id=current_user.street_id),
                           breached=workorders.breached_orders_for(staff=current_user),
                           labels=workorders.STATE_LABELS)


@bp.get("/departments")
def departments_page():
    departments = workorders.departments_of_street(street_id=current_user.street_id)
    return render_template(
        "console/departments.html", departments=departments,
        members={d.id: workorders.members_of(department_id=d.id) for d in departments},
        staff_list=tickets.street_staff(street_id=current_user.street_id),
        limits=workorders.all_limits(street_id=current_user.street_id),
        priorities=TICKET_PRIORITIES, suggested=workorders.SUGGESTED_NAMES,
        figures={row["department_id"]: row for row in reports.department_figures(street_id=current_user.street_id)})


@bp.post("/departments")
@admin_required
def department_create():
    lead = request.form.get("lead_id")
    workorders.create_department(actor=current_user, name=request.form.get("name", ""),
                                 lead_id=int(lead) if lead and lead.isdigit() else None)
    flash("部门已创建", "info")
    return redirect(url_for("console.departments_page"))


@bp.post("/departments/members")
@admin_required
def department_member_add():
    workorders.add_member(actor=current_user, department_id=_int("department_id"), staff_id=_int("staff_id"),
                          lead=as_bool(request.form.get("lead")))
    flash("成员已添加", "info")
    return redirect(url_for("console.departments_page"))


@bp.post("/departments/limits")
@admin_required
def department_limit_set():
    workorders.set_limit(actor=current_user, category=request.form.get("category", ""),
                         priority=request.form.get("priority") or None,
                         response_minutes=_int("response_minutes"), handling_minutes=_int("handling_minutes"))
    flash("时限已保存", "info")
    return redirect(url_for("console.departments_page"))


@bp.post("/tickets/<int:ticket_id>/dispatch")
def ticket_dispatch(ticket_id: int):
    tickets.get_ticket(ticket_id=ticket_id, staff=current_user)  # another street's ticket: 404 before anything
    workorders.dispatch(ticket_id=ticket_id, staff_id=current_user.id, department_id=_int("department_id"),
                        note=request.form.get("note", ""))
    flash("已派单", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/transfer")
def ticket_transfer(ticket_id: int):
    tickets.get_ticket(ticket_id=ticket_id, staff=current_user)
    workorders.transfer(ticket_id=ticket_id, staff_id=current_user.id, department_id=_int("department_id"),
                        reason=request.form.get("reason", ""))
    flash("已转办", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/return")
def ticket_return(ticket_id: int):
    workorders.return_order(ticket_id=ticket_id, staff_id=current_user.id, reason=request.form.get("reason", ""))
    flash("已退单", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/oversee")
def ticket_oversee(ticket_id: int):
    workorders.oversee(ticket_id=ticket_id, staff_id=current_user.id, note=request.form.get("note", ""))
    flash("已督办", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/respond")
def ticket_respond(ticket_id: int):
    workorders.respond(ticket_id=ticket_id, staff_id=current_user.id, body=request.form.get("body", ""))
    flash("已答复居民", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/acknowledge")
def ticket_acknowledge(ticket_id: int):
    workorders.acknowledge(ticket_id=ticket_id, staff_id=current_user.id)
    flash("已签收", "info")
    return _back(ticket_id)


@bp.post("/tickets/<int:ticket_id>/complete")
def ticket_complete(ticket_id: int):
    workorders.complete(ticket_id=ticket_id, staff_id=current_user.id, note=request.form.get("note", ""))
    flash("已办结，已向居民发起回访", "info")
    return _back(ticket_id)
