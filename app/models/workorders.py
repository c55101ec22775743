"""Work orders (issue 21): a street's departments and their members, the ticket dispatched to one of them, its time
limits, the follow-up (回访) after it is resolved, and duplicate reports linked to one parent ticket."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

WORK_ORDER_STATES = ("dispatched", "returned", "done")
# How a department's turn began: 派单, 转办, the follow-up's "未解决" (回访重办), any other reopening of the ticket.
DISPATCH_OPENINGS = ("dispatch", "transfer", "followup", "reopen")
DISPATCH_OUTCOMES = ("open", "transferred", "returned", "done")
OPEN_TURN = "outcome = 'open'"
FOLLOWUP_STATUSES = ("asked", "answered", "expired")
ASKED = "status = 'asked'"


class WorkDepartment(db.Model):
    """A department or team of a street (物业, 城管, 民政, 社区居委会 ...) that tickets are dispatched to."""

    __tablename__ = "work_departments"
    __table_args__ = (UniqueConstraint("street_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    lead = relationship("Staff")
    members: Mapped[list["WorkDepartmentMember"]] = relationship(back_populates="department",
                                                                 cascade="all, delete-orphan")


class WorkDepartmentMember(db.Model):
    __tablename__ = "work_department_members"

    department_id: Mapped[int] = mapped_column(ForeignKey("work_departments.id", ondelete="CASCADE"),
                                               primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True, index=True)

    department: Mapped[WorkDepartment] = relationship(back_populates="members")
    staff = relationship("Staff")


class WorkOrderTimeLimit(db.Model):
    """A street's response and handling limits of a category, for one priority or (priority NULL) for all of them."""

    __tablename__ = "work_order_time_limits"
    __table_args__ = (
        UniqueConstraint("street_id", "category", "priority"),
        CheckConstraint("response_minutes > 0 AND handling_minutes >= response_minutes", name="positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    category: Mapped[str] = mapped_column(String(30))
    priority: Mapped[str | None] = mapped_column(String(10))
    response_minutes: Mapped[int] = mapped_column(Integer)
    handling_minutes: Mapped[int] = mapped_column(Integer)


class WorkOrder(db.Model):
    """A ticket's journey through the departments: one row per ticket, its state changed by compare-and-set."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint(enum_check("state", WORK_ORDER_STATES), name="state"),
        Index("ix_work_orders_department_state", "department_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("work_departments.id"))
    state: Mapped[str] = mapped_column(String(12), default="dispatched")
    dispatched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    response_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handling_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The timers' marks: each set once (compare-and-set), so a sweep run twice warns and texts once.
    response_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    handling_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    handling_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lead's SMS about a breach: claimed before sending, so a retried job never texts twice.
    lead_texted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lead_text_route: Mapped[str | None] = mapped_column(String(10))
    supervised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)

    department: Mapped[WorkDepartment] = relationship()
    ticket = relationship("Ticket")


class WorkOrderDispatch(db.Model):
    """One department's turn with a work order, from its dispatch (or transfer, or reopening) to its end: who had it,
    whether it breached its limits, how it ended. The work order's own flags start again with each turn; these rows
    keep them, so the per-department figures count each turn for the department that had it."""

    __tablename__ = "work_order_dispatches"
    __table_args__ = (
        CheckConstraint(enum_check("opened_by", DISPATCH_OPENINGS), name="opened_by"),
        CheckConstraint(enum_check("outcome", DISPATCH_OUTCOMES), name="outcome"),
        Index("ix_work_order_dispatches_street_dispatched", "street_id", "dispatched_at"),
        # One open turn per work order: the timers mark it, the next step ends it.
        Index("uq_work_order_dispatches_open", "work_order_id", unique=True,
              postgresql_where=text(OPEN_TURN), sqlite_where=text(OPEN_TURN)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("work_departments.id"))
    opened_by: Mapped[str] = mapped_column(String(10))
    dispatched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(12), default="open")
    response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    handling_breached: Mapped[bool] = mapped_column(Boolean, default=False)


class FollowUp(db.Model):
    """The 回访 after a work order is resolved: asked on the resident's channel, answered once."""

    __tablename__ = "work_order_followups"
    __table_args__ = (
        CheckConstraint(enum_check("status", FOLLOWUP_STATUSES), name="status"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        # One open question per conversation: the resident's answer can only mean one ticket.
        Index("uq_work_order_followups_asked", "conversation_id", unique=True,
              postgresql_where=text(ASKED), sqlite_where=text(ASKED)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    # The turn whose completion it asks about: its answer counts for that department.
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("work_order_dispatches.id", ondelete="SET NULL"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    status: Mapped[str] = mapped_column(String(10), default="asked")
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str | None] = mapped_column(Text)


class TicketDuplicate(db.Model):
    """A duplicate report linked to the parent ticket that is worked on; its reporter hears the outcome."""

    __tablename__ = "ticket_duplicates"
    __table_args__ = (CheckConstraint("ticket_id <> parent_ticket_id", name="not_self"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    parent_ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
