"""WeChat subscribe-message (订阅通知) grants: what each resident allowed the account to send them, per template."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.extensions import db
from app.models.base import UTCDateTime, utcnow


class SubscribeGrant(db.Model):
    """Messages of one template an openid still allows: each accepted one-time popup allows one.

    Taken by a guarded UPDATE (`remaining > 0`), so two workers never spend one grant twice."""

    __tablename__ = "wechat_subscribe_grants"
    __table_args__ = (
        UniqueConstraint("openid", "template_id"),
        CheckConstraint("remaining >= 0", name="remaining"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(64))
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscribeEvent(db.Model):
    """A subscribe-message event applied once: WeChat's retries of an event repeat FromUserName + CreateTime."""

    __tablename__ = "wechat_subscribe_events"
    __table_args__ = (UniqueConstraint("openid", "event", "create_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(40))
    create_time: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
