"""The resident mobile API's own tables: sign-in codes, sessions and refresh tokens, idempotency keys,
residents' requests (诉求/随手拍) with their photos, and who may edit an elderly resident's help chain."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.extensions import db
from app.models.base import UTCDateTime, enum_check, utcnow

SIGN_IN_METHODS = ("sms", "wechat")
IDEMPOTENCY_STATES = ("in_progress", "done")
REQUEST_CATEGORIES = ("sanitation", "facilities", "greenery", "safety", "noise", "parking", "other")


class SignInCode(db.Model):
    """A one-time SMS code for phone sign-in; only its keyed hash is stored."""

    __tablename__ = "sign_in_codes"
    __table_args__ = (CheckConstraint("attempts >= 0", name="attempts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResidentSession(db.Model):
    """One signed-in device: the family its rotating refresh tokens belong to; revoking it ends them all."""

    __tablename__ = "resident_sessions"
    __table_args__ = (CheckConstraint(enum_check("method", SIGN_IN_METHODS), name="method"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(10))
    device: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(20))  # sign_out, everywhere, reuse


class RefreshToken(db.Model):
    """A refresh token of a session, usable once; a second use is theft and revokes the session."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("resident_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    session: Mapped[ResidentSession] = relationship()


class IdempotencyRecord(db.Model):
    """A write's Idempotency-Key, per resident, with the response to replay for a retry of it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("resident_id", "key"),
        CheckConstraint(enum_check("state", IDEMPOTENCY_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    state: Mapped[str] = mapped_column(String(12), default="in_progress")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ResidentRequest(db.Model):
    """A problem a resident reported from the app; staff work on it as the linked ticket."""

    __tablename__ = "resident_requests"
    __table_args__ = (
        CheckConstraint(enum_check("category", REQUEST_CATEGORIES), name="category"),
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates_pair"),
        CheckConstraint("latitude IS NOT NULL OR pole_number IS NOT NULL", name="located"),
        Index("ix_resident_requests_resident_created", "resident_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    category: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    # GCJ-02, as WeChat's and domestic map SDKs' location APIs give them.
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    pole_number: Mapped[str | None] = mapped_column(String(20))  # the street's 一号定位 plate
    rating_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket = relationship("Ticket")
    photos: Mapped[list["RequestPhoto"]] = relationship(back_populates="request", order_by="RequestPhoto.id")


class RequestPhoto(db.Model):
    """An uploaded, re-encoded photo; it belongs to its uploader until a request takes it."""

    __tablename__ = "request_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("resident_requests.id"), index=True)
    storage_key: Mapped[str] = mapped_column(String(100), unique=True)
    content_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[ResidentRequest | None] = relationship(back_populates="photos")


class HelpDelegate(db.Model):
    """A family member (by phone) an elderly resident allowed to edit their help chain and see their alerts."""

    __tablename__ = "help_delegates"
    __table_args__ = (UniqueConstraint("resident_id", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164; matched against the delegate's proven phone
    name: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
