"""今日预约: the day's appointments per department; staff mark who came (已就诊) and who did not (爽约).

Hospitals are not tied to streets, so every department is offered; the rows are those the staff member's street's
residents booked, and only those can be marked (the services scope both).
"""
from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.console.blueprint import bp
from app.core.errors import InvalidTransition, ValidationFailed
from app.services import booking
from app.services.booking import day_schedule

STATUS_LABELS = {"booked": "待就诊", "fulfilled": "已就诊", "noshow": "爽约", "cancelled": "已取消"}
# The services speak English to API clients; the desk reads Chinese.
_REFUSALS = {
    ("attended", "too_early"): "就诊当天才能标记“已就诊”",
    ("noshow", "too_early"): "预约时间到了之后才能标记“爽约”",
}
_ALREADY = "该预约已取消或已标记过，不能再标记"


@bp.get("/appointments")
def appointments_page():
    schedule = day_schedule(street_id=current_user.street_id, day=_day(request.args.get("date")),
                            department_id=_department(request.args.get("department")))
    return render_template("console/appointments.html", schedule=schedule, status_labels=STATUS_LABELS)


@bp.post("/appointments/<int:appointment_id>/attended")
def appointment_attended(appointment_id: int):
    return _mark("attended", booking.mark_attended, appointment_id)


@bp.post("/appointments/<int:appointment_id>/noshow")
def appointment_noshow(appointment_id: int):
    return _mark("noshow", booking.mark_noshow, appointment_id)


def _mark(action: str, service, appointment_id: int):
    try:
        appointment = service(appointment_id=appointment_id, street_id=current_user.street_id)
    except InvalidTransition as exc:
        flash(_REFUSALS.get((action, exc.code), _ALREADY), "error")
    else:
        flash(f"已标记为“{STATUS_LABELS[appointment.status]}”", "info")
    # Back to the day and department the staff member was looking at (only well-formed values survive).
    day = _day(request.form.get("date"), strict=False)
    department = _department(request.form.get("department"), strict=False)
    return redirect(url_for("console.appointments_page", date=day.isoformat() if day else None,
                            department=department, _anchor=f"appt-{appointment_id}"))


def _day(raw: str | None, *, strict: bool = True) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        if strict:
            raise ValidationFailed("日期格式应为 年-月-日，例如 2024-05-01") from None
        return None


def _department(raw: str | None, *, strict: bool = True) -> int | None:
    if not raw:
        return None
    if raw.strip().isdecimal() and len(raw.strip()) < 10:  # isdigit() would pass "²", which int() refuses
        return int(raw)
    if strict:
        raise ValidationFailed("科室参数无效")
    return None
