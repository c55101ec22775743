"""Hospital booking after HL7 FHIR Schedule / Slot / Appointment, with patients booked by real name."""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

DOCTOR_TITLES = ("普通", "专家")
SESSIONS = ("morning", "afternoon")
APPOINTMENT_STATUSES = ("booked", "cancelled", "fulfilled", "noshow")
ACTIVE_APPOINTMENT = "status = 'booked'"


class Hospital(db.Model):
    __tablename__ = "hospitals"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    address: Mapped[str] = mapped_column(String(200), default="")

    departments: Mapped[list["Department"]] = relationship(back_populates="hospital")


class Department(db.Model):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("hospital_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))

    hospital: Mapped[Hospital] = relationship(back_populates="departments")


class Doctor(db.Model):
    __tablename__ = "doctors"
    __table_args__ = (CheckConstraint(enum_check("title", DOCTOR_TITLES), name="title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(10), default="普通")

    department: Mapped[Department] = relationship()


class Schedule(db.Model):
    """A doctor's recurring session (weekday, morning/afternoon) that generates slots."""

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("doctor_id", "weekday", "session"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint(enum_check("session", SESSIONS), name="session"),
        CheckConstraint("slot_minutes > 0 AND capacity_per_slot > 0", name="positive"),
        CheckConstraint("start_time < end_time", name="time_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # Monday = 0, as Python's date.weekday()
    session: Mapped[str] = mapped_column(String(10))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    capacity_per_slot: Mapped[int] = mapped_column(Integer, default=3)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Slot(db.Model):
    """A bookable period with a number of seats; booked_count can never exceed capacity."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("doctor_id", "start_at"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="booked_within_capacity"),
        CheckConstraint("start_at < end_at", name="time_order"),
        CheckConstraint(enum_check("session", SESSIONS), name="session"),
        Index("ix_slots_department_start", "department_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))
    local_date: Mapped[date] = mapped_column(Date)  # the day in Asia/Shanghai, for day rules
    session: Mapped[str] = mapped_column(String(10))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked_count: Mapped[int] = mapped_column(Integer, default=0)

    doctor: Mapped[Doctor] = relationship()
    department: Mapped[Department] = relationship()

    @property
    def free(self) -> int:
        return self.capacity - self.booked_count


class Patient(db.Model):
    """A person who can be booked for: the resident themself or a family member they registered."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("resident_id", "id_number_hash"),
        CheckConstraint(enum_check("relation", ("self", "parent", "child", "spouse", "other")), name="relation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    relation: Mapped[str] = mapped_column(String(10), default="self")
    # The ID number is stored encrypted; the keyed hash finds duplicates, the last 4 show it masked.
    id_number_encrypted: Mapped[str] = mapped_column(String(255))
    id_number_hash: Mapped[str] = mapped_column(String(64), index=True)
    id_number_last4: Mapped[str] = mapped_column(String(4))
    phone: Mapped[str | None] = mapped_column(String(20))
    suspended_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Removing a family member keeps the row: past appointments and no-shows still refer to it.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resident = relationship("Resident")


class Appointment(db.Model):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(enum_check("status", APPOINTMENT_STATUSES), name="status"),
        CheckConstraint("seat_no >= 1", name="seat_positive"),
        # One holder per seat among active appointments.
        Index("uq_appointments_active_seat", "slot_id", "seat_no", unique=True,
              postgresql_where=text(ACTIVE_APPOINTMENT), sqlite_where=text(ACTIVE_APPOINTMENT)),
        # The daily rule (one active booking per patient, department and day) held by the database.
        Index("uq_appointments_active_patient_day", "patient_id", "department_id", "local_date",
              unique=True, postgresql_where=text(ACTIVE_APPOINTMENT), sqlite_where=text(ACTIVE_APPOINTMENT)),
        Index("ix_appointments_patient_status", "patient_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    seat_no: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    booked_by_resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    local_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="booked")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_evening_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_soon_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    slot: Mapped[Slot] = relationship()
    patient: Mapped[Patient] = relationship()
    department: Mapped[Department] = relationship()
