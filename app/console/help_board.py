"""The help board: the street's open help alerts, live, with their timeline; accept, note, call again, resolve."""
from __future__ import annotations

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.console.blueprint import bp
from app.services import care
from app.services import help as help_service
from app.services.help import OUTCOMES


def _back():
    return redirect(url_for("console.help_board_page"))


@bp.get("/help")
@login_required
def help_board_page():
    return render_template("console/help_board.html", alerts=help_service.open_alerts(street_id=current_user.street_id),
                           outcomes=OUTCOMES, devices=care.devices_of_street(street_id=current_user.street_id),
                           overdue=care.overdue_steps(street_id=current_user.street_id))


@bp.get("/help/alerts")
@login_required
def help_board_rows():
    """The alert cards alone, fetched every few seconds by the board's script."""
    return render_template("console/help_alerts.html", alerts=help_service.open_alerts(street_id=current_user.street_id),
                           outcomes=OUTCOMES)


@bp.get("/help/alerts.json")
@login_required
def help_board_json():
    alerts = help_service.open_alerts(street_id=current_user.street_id)
    return jsonify({"alerts": alerts, "alarm": any(a["alarm"] for a in alerts),
                    "overdue_steps": care.overdue_steps(street_id=current_user.street_id),
                    "devices": care.devices_of_street(street_id=current_user.street_id)})


@bp.get("/help/board.js")
def help_board_script():
    # Served from here (not inline) because the console's CSP allows scripts from 'self' only.
    return Response(render_template("console/help_board.js"), mimetype="application/javascript")


@bp.post("/help/alerts/<int:alert_id>/accept")
@login_required
def help_accept(alert_id: int):
    help_service.accept_by_staff(alert_id=alert_id, staff_id=current_user.id)
    flash("已由您接受，居民和其他联系人会收到通知", "info")
    return _back()


@bp.post("/help/alerts/<int:alert_id>/note")
@login_required
def help_note(alert_id: int):
    help_service.add_note(alert_id=alert_id, staff_id=current_user.id, body=request.form.get("body", ""))
    return _back()


@bp.post("/help/alerts/<int:alert_id>/call-again")
@login_required
def help_call_again(alert_id: int):
    help_service.call_again(alert_id=alert_id, staff_id=current_user.id)
    flash("正在重新呼叫", "info")
    return _back()


@bp.post("/help/alerts/<int:alert_id>/resolve")
@login_required
def help_resolve(alert_id: int):
    help_service.resolve_alert(alert_id=alert_id, staff_id=current_user.id, outcome=request.form.get("outcome", ""),
                               note=request.form.get("note", ""))
    flash("求助已结束", "info")
    return _back()
