"""One-key help: devices, each elderly resident's contact chain, alerts and their escalation steps."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

CONTACT_RELATIONS = ("family", "neighbour", "grid_worker", "staff")
ALERT_STATUSES = ("escalating", "accepted", "resolved", "cancelled")
OPEN_ALERT = "status IN ('escalating', 'accepted')"
ATTEMPT_CHANNELS = ("voice", "sms", "wechat")
ALERT_SOURCES = ("device", "wechat_menu", "bot", "console", "api", "checkin")


class HelpDevice(db.Model):
    __tablename__ = "help_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_uid: Mapped[str] = mapped_column(String(64), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    # HMAC key shared with the device; encrypted at rest like ID numbers.
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HelpContact(db.Model):
    """One step of a resident's chain: who is called, on which channels, and how long to wait."""

    __tablename__ = "help_contacts"
    __table_args__ = (
        UniqueConstraint("resident_id", "position"),
        CheckConstraint(enum_check("relation", CONTACT_RELATIONS), name="relation"),
        CheckConstraint("ring_seconds > 0 AND wait_seconds > 0", name="positive_timeouts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164; empty for the staff group
    wechat_openid: Mapped[str | None] = mapped_column(String(64))
    relation: Mapped[str] = mapped_column(String(12))
    channels: Mapped[str] = mapped_column(String(30), default="voice,sms")  # comma list of ATTEMPT_CHANNELS
    ring_seconds: Mapped[int] = mapped_column(Integer, default=30)
    wait_seconds: Mapped[int] = mapped_column(Integer, default=60)


class HelpAlert(db.Model):
    """An alert walks the chain step by step; (round, step) only moves by compare-and-set."""

    __tablename__ = "help_alerts"
    __table_args__ = (
        CheckConstraint(enum_check("status", ALERT_STATUSES), name="status"),
        CheckConstraint(enum_check("source", ALERT_SOURCES), name="source"),
        # A resident has at most one open alert: a second press joins it.
        Index("uq_help_alerts_open_resident", "resident_id", unique=True,
              postgresql_where=text(OPEN_ALERT), sqlite_where=text(OPEN_ALERT)),
        Index("ix_help_alerts_status_due", "status", "step_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    source: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="escalating")
    round: Mapped[int] = mapped_column(Integer, default=1)
    step: Mapped[int] = mapped_column(Integer, default=0)  # index into the chain; 0 = not started
    step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alarm: Mapped[bool] = mapped_column(Boolean, default=False)  # the chain ran out at least once
    accepted_contact_id: Mapped[int | None] = mapped_column(ForeignKey("help_contacts.id"))
    accepted_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    accepted_via: Mapped[str | None] = mapped_column(String(10))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(30))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Called before the chain in every round (escalation.chain_for): the resident themself for a missed check-in,
    # the contact (or staff member, by their phone) who accepted and left the alert open for a re-alert.
    lead_resident: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    lead_contact_id: Mapped[int | None] = mapped_column(ForeignKey("help_contacts.id"))
    lead_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))

    presses: Mapped[list["HelpPress"]] = relationship(back_populates="alert")


class HelpPress(db.Model):
    """Each press (or menu click, or bot request); a device's retried press id is stored once."""

    __tablename__ = "help_presses"
    __table_args__ = (UniqueConstraint("device_id", "press_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("help_alerts.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("help_devices.id"))
    press_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(12))
    pressed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    alert: Mapped[HelpAlert] = relationship(back_populates="presses")


class EscalationStep(db.Model):
    """One contact attempt of an alert; unique per (alert, round, step, channel) so a rerun adds nothing."""

    __tablename__ = "escalation_steps"
    __table_args__ = (
        UniqueConstraint("alert_id", "round", "step", "channel"),
        CheckConstraint(enum_check("channel", ATTEMPT_CHANNELS), name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("help_alerts.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("help_contacts.id"))
    channel: Mapped[str] = mapped_column(String(10))
    to_address: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, placed, answered, no-answer ...
    external_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    # Who carried a voice or SMS attempt: "twilio" or "aliyun" (integrations/telephony.py); NULL for WeChat.
    provider: Mapped[str | None] = mapped_column(String(16))
    short_code: Mapped[str | None] = mapped_column(String(8))
    last_error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
