"""Bot bookkeeping jobs: the intents of resident messages, for the reports."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import bot_insights


@every(5)
def classify_pending() -> int:
    return bot_insights.classify_pending()


def record_intent(message_id: int) -> None:
    """Jobs queued one per message before the intent queue existed still run after an upgrade."""
    bot_insights.record_intent(message_id=message_id)
