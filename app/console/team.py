"""The team lead's page (admin only): who is on duty, their open tickets, and the breached ones."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user

from app.console.access import admin_required, as_bool
from app.console.blueprint import bp
from app.services import staff, tickets


@bp.get("/team")
@admin_required
def team_page():
    staff_list = tickets.street_staff(street_id=current_user.street_id)
    open_tickets = tickets.queue(staff=current_user, view="open")
    load = {s.id: sum(1 for t in open_tickets if t.assignee_id == s.id) for s in staff_list}
    return render_template("console/team.html", staff_list=staff_list, load=load,
                           breached=tickets.queue(staff=current_user, view="breached"))


@bp.post("/team/<int:staff_id>/duty")
@admin_required
def team_duty(staff_id: int):
    staff.set_on_duty(actor=current_user, staff_id=staff_id, on_duty=as_bool(request.form.get("on_duty")))
    return redirect(url_for("console.team_page"))
