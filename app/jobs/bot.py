"""Bot bookkeeping jobs."""
from __future__ import annotations

from app.services import bot_insights


def record_intent(message_id: int) -> None:
    bot_insights.record_intent(message_id=message_id)
