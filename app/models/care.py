"""Elder care beyond the button: each help device's health, and the daily check-in (平安打卡) of enrolled residents."""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

OUTAGE_REASONS = ("silent", "battery")
CHECKIN_VIA = ("device", "wechat", "call", "sms", "console")


class DeviceHealth(db.Model):
    """The last heartbeat of a help button, and its open outage (at most one: once per outage)."""

    __tablename__ = "device_health"
    __table_args__ = (
        CheckConstraint("battery IS NULL OR battery BETWEEN 0 AND 100", name="battery"),
        CheckConstraint("interval_seconds > 0", name="interval"),
        CheckConstraint(enum_check("outage_reason", OUTAGE_REASONS), name="outage_reason"),
    )

    device_id: Mapped[int] = mapped_column(ForeignKey("help_devices.id", ondelete="CASCADE"), primary_key=True)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The device's own timestamp of the last accepted heartbeat: a signed heartbeat not newer than it is a replay.
    last_device_ts: Mapped[int | None] = mapped_column(BigInteger)
    battery: Mapped[int | None] = mapped_column(Integer)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    # Silence is measured from here until the first heartbeat (the device's registration, or when it was first seen).
    watched_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outage_reason: Mapped[str | None] = mapped_column(String(10))
    outage_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outage_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Empty while the open outage's family contacts are still to be told (committed with the outage; the sweep retries).
    outage_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outages: Mapped[int] = mapped_column(Integer, default=0)


class CheckinEnrolment(db.Model):
    """A resident who checks in every day by `due_time` (Asia/Shanghai); a missed day is marked once."""

    __tablename__ = "checkin_enrolments"
    __table_args__ = (Index("ix_checkin_enrolments_due", "active", "due_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), unique=True)
    due_time: Mapped[time] = mapped_column(Time)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The Shanghai day last found missed, and the alert it raised: the compare-and-set that makes it once a day.
    last_missed_on: Mapped[date | None] = mapped_column(Date)
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_alert_id: Mapped[int | None] = mapped_column(ForeignKey("help_alerts.id"))


class Checkin(db.Model):
    """One check-in per resident and Shanghai day; a second one that day is the same check-in."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("resident_id", "local_date"),
        CheckConstraint(enum_check("via", CHECKIN_VIA), name="via"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    local_date: Mapped[date] = mapped_column(Date)
    via: Mapped[str] = mapped_column(String(10))
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
