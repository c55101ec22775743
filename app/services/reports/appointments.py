"""Appointments: bookings, cancellations and no-shows per department, for visits on the scope's days.

Counted by the day of the visit (local_date), not the day of booking: a no-show belongs to the day
the seat was left empty.
"""
from __future__ import annotations

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Appointment, Department, Hospital
from app.services.reports._sql import count_if, ratio, scoped_resident_ids
from app.services.reports.export import Section, percent


def report(*, scope) -> dict:
    stmt = (select(Department.id, Department.name, Hospital.name.label("hospital"), func.count().label("bookings"),
                   count_if(Appointment.status == "cancelled").label("cancelled"),
                   count_if(Appointment.status == "noshow").label("noshow"),
                   count_if(Appointment.status == "fulfilled").label("fulfilled"),
                   count_if(Appointment.status == "booked").label("booked"))
            .join(Department, Department.id == Appointment.department_id)
            .join(Hospital, Hospital.id == Department.hospital_id)
            .where(Appointment.local_date >= scope.start, Appointment.local_date <= scope.end,
                   Appointment.booked_by_resident_id.in_(scoped_resident_ids(scope)))
            .group_by(Department.id, Department.name, Hospital.name)
            .order_by(func.count().desc(), Hospital.name, Department.name))
    departments = [{"department_id": r.id, "department": r.name, "hospital": r.hospital, "bookings": r.bookings,
                    "cancelled": r.cancelled, "noshow": r.noshow, "fulfilled": r.fulfilled, "booked": r.booked,
                    # No-shows among the visits that were due (not cancelled, not still ahead).
                    "noshow_rate": ratio(r.noshow, r.noshow + r.fulfilled)}
                   for r in db.session.execute(stmt)]
    totals = {k: sum(d[k] for d in departments) for k in ("bookings", "cancelled", "noshow", "fulfilled", "booked")}
    totals["noshow_rate"] = ratio(totals["noshow"], totals["noshow"] + totals["fulfilled"])
    return {"departments": departments, "totals": totals}


def sections(data: dict) -> list[Section]:
    rows = [[d["hospital"], d["department"], d["bookings"], d["cancelled"], d["noshow"], d["fulfilled"], d["booked"],
             percent(d["noshow_rate"])] for d in data["departments"]]
    t = data["totals"]
    rows.append(["合计", "", t["bookings"], t["cancelled"], t["noshow"], t["fulfilled"], t["booked"],
                 percent(t["noshow_rate"])])
    return [Section("各科室预约", ["医院", "科室", "预约", "取消", "爽约", "已就诊", "待就诊", "爽约率"], rows)]
