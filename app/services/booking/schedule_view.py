"""The day's appointments per department, as staff see them in the console ("今日预约").

Rows carry only what the desk needs: the patient's name and a masked ID number, never the number itself. Every
department is offered (hospitals serve every street), but a street's staff see only the appointments its own
residents booked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.core.errors import NotFound
from app.core.extensions import db
from app.models import Appointment, Department, Slot
from app.models.base import utcnow
from app.services.booking.appointments import list_departments
from app.services.booking.calendar import local_day
from app.services.residents import mask, residents_of_street


@dataclass(frozen=True)
class AppointmentRow:
    id: int
    start_at: datetime
    end_at: datetime
    doctor_name: str
    doctor_title: str
    patient_name: str
    patient_id_masked: str
    status: str
    seat_no: int


@dataclass
class DepartmentDay:
    department_id: int
    department_name: str
    hospital_name: str
    rows: list[AppointmentRow] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)


@dataclass(frozen=True)
class DaySchedule:
    day: date
    today: date
    department_id: int | None
    departments: list[DepartmentDay]
    department_options: list[Department]


def day_schedule(*, street_id: int, day: date | None = None, department_id: int | None = None,
                 now: datetime | None = None) -> DaySchedule:
    """Appointments the street's residents booked for a local day (default today in Asia/Shanghai), grouped by
    department, cancelled included."""
    today = local_day(now or utcnow())
    day = day or today
    if department_id is not None and db.session.get(Department, department_id) is None:
        raise NotFound("没有这个科室")
    query = (
        select(Appointment).join(Appointment.slot)
        .options(joinedload(Appointment.slot).joinedload(Slot.doctor), joinedload(Appointment.patient),
                 joinedload(Appointment.department).joinedload(Department.hospital))
        .where(Appointment.local_date == day,
               Appointment.booked_by_resident_id.in_(residents_of_street(street_id=street_id)))
        .order_by(Appointment.department_id, Slot.start_at, Slot.doctor_id, Appointment.seat_no, Appointment.id)
    )
    if department_id is not None:
        query = query.where(Appointment.department_id == department_id)
    groups: dict[int, DepartmentDay] = {}
    for appointment in db.session.scalars(query):
        department = appointment.department
        group = groups.setdefault(department.id, DepartmentDay(
            department_id=department.id, department_name=department.name, hospital_name=department.hospital.name))
        group.rows.append(_row(appointment))
    ordered = sorted(groups.values(), key=lambda g: (g.hospital_name, g.department_name, g.department_id))
    return DaySchedule(day=day, today=today, department_id=department_id, departments=ordered,
                       department_options=list_departments())


def _row(appointment: Appointment) -> AppointmentRow:
    slot, patient = appointment.slot, appointment.patient
    return AppointmentRow(
        id=appointment.id, start_at=slot.start_at, end_at=slot.end_at, doctor_name=slot.doctor.name,
        doctor_title=slot.doctor.title, patient_name=patient.name,
        patient_id_masked=mask(patient.id_number_last4), status=appointment.status, seat_no=appointment.seat_no,
    )
