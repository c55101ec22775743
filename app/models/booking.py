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
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

DOCTOR_TITLES = ("普通", "专家")
SESSIONS = ("morning", "afternoon")
APPOINTMENT_STATUSES = ("booked", "cancelled", "fulfilled", "noshow")
ACTIVE_APPOINTMENT = "status = 'booked'"
# A hold is a seat set aside for a few minutes: chosen in a form ("hold") or offered from the waitlist ("offer").
HOLD_KINDS = ("hold", "offer")
HOLD_STATUSES = ("held", "confirmed", "released", "expired")
HELD = "status = 'held'"
WAITLIST_STATUSES = ("waiting", "offered", "booked", "lapsed", "left")
IN_LINE = "status IN ('waiting', 'offered')"


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
    """A bookable period with a number of seats; booked and held seats together never exceed capacity."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("doctor_id", "start_at"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="booked_within_capacity"),
        CheckConstraint("held_count >= 0 AND booked_count + held_count <= capacity", name="seats_within_capacity"),
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
    # Seats of holds with status 'held', expired ones included until they are released (slot_holds).
    held_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Loaded by search_free_slots only: held seats whose hold ran out, free although not released yet.
    expired_holds: Mapped[int | None] = query_expression()

    doctor: Mapped[Doctor] = relationship()
    department: Mapped[Department] = relationship()

    @property
    def free(self) -> int:
        return self.capacity - self.booked_count - (self.held_count or 0) + (self.expired_holds or 0)


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


class WaitlistEntry(db.Model):
    """A patient in line for a department's day; a freed seat is offered to the first one waiting."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint(enum_check("status", WAITLIST_STATUSES), name="status"),
        # In line once per patient, department and day.
        Index("uq_waitlist_entries_in_line", "patient_id", "department_id", "local_date", unique=True,
              postgresql_where=text(IN_LINE), sqlite_where=text(IN_LINE)),
        Index("ix_waitlist_entries_line", "department_id", "local_date", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # the order of the line
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    local_date: Mapped[date] = mapped_column(Date)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship()
    patient: Mapped[Patient] = relationship()


class SlotHold(db.Model):
    """One seat of a slot set aside until expires_at (FHIR's busy-tentative): counted in slots.held_count
    while its status is 'held', then confirmed into an appointment, released, or expired."""

    __tablename__ = "slot_holds"
    __table_args__ = (
        CheckConstraint(enum_check("kind", HOLD_KINDS), name="kind"),
        CheckConstraint(enum_check("status", HOLD_STATUSES), name="status"),
        CheckConstraint("(kind = 'offer') = (waitlist_entry_id IS NOT NULL)", name="offer_has_entry"),
        CheckConstraint("created_at < expires_at", name="time_order"),
        # One held seat per patient, department and day, as for appointments.
        Index("uq_slot_holds_held_patient_day", "patient_id", "department_id", "local_date", unique=True,
              postgresql_where=text(HELD), sqlite_where=text(HELD)),
        # One live offer per waitlist entry.
        Index("uq_slot_holds_held_offer", "waitlist_entry_id", unique=True,
              postgresql_where=text(HELD), sqlite_where=text(HELD)),
        # The expiry sweep reads the held ones by time.
        Index("ix_slot_holds_held_expiry", "expires_at", postgresql_where=text(HELD), sqlite_where=text(HELD)),
        Index("ix_slot_holds_slot_status", "slot_id", "status"),
        Index("ix_slot_holds_resident_status", "resident_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    local_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10), default="hold")
    status: Mapped[str] = mapped_column(String(10), default="held")
    waitlist_entry_id: Mapped[int | None] = mapped_column(ForeignKey("waitlist_entries.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # offers: when the notice was queued

    slot: Mapped[Slot] = relationship()
    patient: Mapped[Patient] = relationship()
    department: Mapped[Department] = relationship()
    waitlist_entry: Mapped[WaitlistEntry | None] = relationship()
    appointment: Mapped[Appointment | None] = relationship()
