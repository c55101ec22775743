"""The knowledge base: FAQ answers the bot fetches by topic, editable by staff without retraining."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.extensions import db
from app.models.base import UTCDateTime, utcnow


class FaqArticle(db.Model):
    __tablename__ = "faq_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(60), unique=True)  # the bot's faq/<topic> key
    title: Mapped[str] = mapped_column(String(100))
    answer: Mapped[str] = mapped_column(Text)
    uses: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
