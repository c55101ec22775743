"""Conversations on a channel, the messages in them, and the outbox every reply goes through."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow
from app.models.residents import CHANNELS

MESSAGE_AUTHORS = ("resident", "bot", "staff", "system")
OUTBOX_STATUSES = ("pending", "sending", "sent", "delivered", "failed", "undeliverable")
# How a sent row reached the resident: WeChat subscribe message, WeChat 客服 message, or SMS (docs/channels.md).
OUTBOX_ROUTES = ("subscribe", "kefu", "sms")


class Conversation(db.Model):
    """A resident's thread on one channel; `bot_sender` is the id the bot knows it by."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("resident_id", "channel"),
        CheckConstraint(enum_check("channel", CHANNELS), name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(String(64))  # openid or E.164 the replies go to
    bot_sender: Mapped[str] = mapped_column(String(40), unique=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fallback_streak: Mapped[int] = mapped_column(Integer, default=0)
    needs_attention: Mapped[bool] = mapped_column(default=False)  # a delivery failed for good
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resident = relationship("Resident")


class Message(db.Model):
    """Every message in or out; (channel, external_id) is the durable guard against retried webhooks."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        CheckConstraint(enum_check("author", MESSAGE_AUTHORS), name="author"),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        # The reports' live tail (days not rolled up yet, see services/reports/rollup.py) and the rollup's
        # refresh read a day or three of resident messages; without it each read scanned every message.
        Index("ix_messages_resident_created", "created_at", postgresql_where=text("author = 'resident'"),
              sqlite_where=text("author = 'resident'")),
        Index("ix_messages_late_answer_due", "late_answer_due_at",
              postgresql_where=text("late_answer_due_at IS NOT NULL"),
              sqlite_where=text("late_answer_due_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    direction: Mapped[str] = mapped_column(String(3))
    author: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str | None] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set while the bot answers after the webhook's budget; if it is still set at this time, staff take over.
    late_answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboundMessage(db.Model):
    """A row first, then a job: a lost job or dead worker delays a message but never loses it."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        CheckConstraint(enum_check("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint(enum_check("channel", CHANNELS), name="channel"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(enum_check("route", OUTBOX_ROUTES), name="route"),
        Index("ix_outbound_status_next", "status", "next_attempt_at"),
        UniqueConstraint("conversation_id", "dedup_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    to_address: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), default="reply")  # reply, staff_reply, reminder, notice ...
    # Keeps a retried producer (same turn, same reminder) from queueing the same message twice.
    dedup_key: Mapped[str | None] = mapped_column(String(80))
    # Messages of one conversation go out in (sequence) order.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(14), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A logical subscribe-template key ("booking_reminder") and its fields: sent as a WeChat subscribe message
    # when the resident granted that template (WECHAT_SUBSCRIBE_TEMPLATES), else as `body`.
    template: Mapped[str | None] = mapped_column(String(40))
    template_fields: Mapped[dict | None] = mapped_column(JSON)
    route: Mapped[str | None] = mapped_column(String(10))  # set when sent: OUTBOX_ROUTES
    # Who carried an SMS row: "twilio" or "aliyun" (integrations/telephony.py, chosen per number); NULL for WeChat.
    provider: Mapped[str | None] = mapped_column(String(16))

    conversation: Mapped[Conversation] = relationship()
