"""Slot generation from doctors' schedules (idempotent: a slot that exists is left as it is)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core.extensions import db
from app.models import Doctor, Schedule, Slot

SHANGHAI = ZoneInfo("Asia/Shanghai")


def generate_slots(*, start: date, days: int) -> int:
    """Create the slots of every active schedule for `days` days from `start`; returns how many were new."""
    schedules = db.session.execute(
        select(Schedule, Doctor.department_id).join(Doctor, Doctor.id == Schedule.doctor_id)
        .where(Schedule.active.is_(True))
    ).all()
    existing = {
        (doctor_id, start_at)
        for doctor_id, start_at in db.session.execute(
            select(Slot.doctor_id, Slot.start_at).where(
                Slot.start_at >= _utc(start, datetime.min.time()),
                Slot.start_at < _utc(start + timedelta(days=days), datetime.min.time()),
            )
        )
    }
    created = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        for schedule, department_id in schedules:
            if schedule.weekday != day.weekday():
                continue
            for slot_start, slot_end in _periods(day, schedule):
                if (schedule.doctor_id, slot_start) in existing:
                    continue
                db.session.add(Slot(
                    doctor_id=schedule.doctor_id, department_id=department_id, schedule_id=schedule.id,
                    local_date=day, session=schedule.session, start_at=slot_start, end_at=slot_end,
                    capacity=schedule.capacity_per_slot, booked_count=0,
                ))
                created += 1
    db.session.commit()
    return created


def _periods(day: date, schedule: Schedule):
    cursor = datetime.combine(day, schedule.start_time, SHANGHAI)
    end = datetime.combine(day, schedule.end_time, SHANGHAI)
    step = timedelta(minutes=schedule.slot_minutes)
    while cursor + step <= end:
        yield cursor.astimezone(ZoneInfo("UTC")), (cursor + step).astimezone(ZoneInfo("UTC"))
        cursor += step


def _utc(day: date, at) -> datetime:
    return datetime.combine(day, at, SHANGHAI).astimezone(ZoneInfo("UTC"))
