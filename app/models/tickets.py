"""Staff of a street, the tickets they answer, each ticket's timeline, and canned replies."""
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

STAFF_ROLES = ("staff", "admin")
TICKET_STATUSES = ("open", "pending", "resolved", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_SOURCES = ("bot", "help_alert", "delivery_failure", "staff", "resident")
EVENT_KINDS = (
    "message_in", "reply_out", "note", "status", "assignment", "sla_breach", "delivery_failed",
    "alert_step", "bot_transcript", "csat",
    "workorder",  # a work order's step (dispatch, transfer, return, oversight, timers, follow-up): issue 21
)
OPEN_TICKET = "status IN ('open', 'pending')"


class Staff(db.Model):
    __tablename__ = "staff"
    __table_args__ = (CheckConstraint(enum_check("role", STAFF_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"), index=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default="staff")
    phone: Mapped[str | None] = mapped_column(String(20))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # round-robin order
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    street = relationship("Street")

    # Flask-Login's user protocol, kept here so the console needs no wrapper class.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class StaffSession(db.Model):
    """One console sign-in (a browser): the cookie carries a random token, only its keyed hash is stored here.

    Every request needs the row, so deleting it (logout) ends the session wherever the cookie was copied to; it is
    bound to the password it was opened with, so a new password ends every session of the account."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    password_stamp: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(enum_check("status", TICKET_STATUSES), name="status"),
        CheckConstraint(enum_check("priority", TICKET_PRIORITIES), name="priority"),
        CheckConstraint(enum_check("source", TICKET_SOURCES), name="source"),
        CheckConstraint("csat_score IS NULL OR csat_score BETWEEN 1 AND 5", name="csat_range"),
        # One open ticket per conversation at a time.
        Index("uq_tickets_open_conversation", "conversation_id", unique=True,
              postgresql_where=text(OPEN_TICKET), sqlite_where=text(OPEN_TICKET)),
        Index("ix_tickets_street_status", "street_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    # Indexed: every inbound message asks whether a ticket of its conversation could take it.
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(10), default="open")
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    category: Mapped[str] = mapped_column(String(30), default="general")
    source: Mapped[str] = mapped_column(String(20))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    csat_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    assignee: Mapped[Staff | None] = relationship()
    events: Mapped[list["TicketEvent"]] = relationship(back_populates="ticket", order_by="TicketEvent.id")


class TicketEvent(db.Model):
    __tablename__ = "ticket_events"
    __table_args__ = (CheckConstraint(enum_check("kind", EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class CannedReply(db.Model):
    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("street_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    code: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)

    street = relationship("Street")
