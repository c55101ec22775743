"""Rollups the team lead's reports read instead of a year of raw rows, and how far each is complete."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.extensions import db
from app.models.base import UTCDateTime


class ConversationDay(db.Model):
    """A conversation's resident messages on one Asia/Shanghai day: what the volume and bot reports count.

    Derived data: recomputed from `messages` by services.reports.rollup (never incremented), and only
    trusted for days before its RollupWatermark.
    """

    __tablename__ = "conversation_days"
    __table_args__ = (
        CheckConstraint("classified <= resident_messages AND fallback <= classified", name="counts"),
        Index("ix_conversation_days_day", "day"),
    )

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    resident_messages: Mapped[int] = mapped_column(Integer)
    classified: Mapped[int] = mapped_column(Integer)  # resident messages with an intent (none in human mode)
    fallback: Mapped[int] = mapped_column(Integer)  # of those, the ones the bot did not understand


class RollupWatermark(db.Model):
    """Days before `complete_before` are in the named rollup; later days are aggregated live."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    complete_before: Mapped[date | None] = mapped_column(Date)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
