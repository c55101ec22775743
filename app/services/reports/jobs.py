"""Report jobs, off the webhook path: the rollups and the intents of resident messages."""
from __future__ import annotations

from app.core.tasks import job
from app.services.reports import intents, rollup


# The watermark moves once a day (an hour after Shanghai midnight); the hourly runs in between recompute
# the last days again, which corrects anything a late change left behind.
@job("reports.refresh_rollups", every=3600)
def refresh_report_rollups() -> str:
    result = rollup.refresh()
    return f"{rollup.NAME}: {result.rows} rows, complete before {result.complete_before}"


@job("reports.classify_pending", every=5)
def classify_pending() -> int:
    return intents.classify_pending()


@job("reports.sweep_unclassified", every=300)
def sweep_unclassified() -> int:
    """The intent queue is in Redis only: this finds what an empty restart made it forget (intents.py)."""
    return intents.sweep_unclassified()


@job("reports.record_intent")
def record_intent(message_id: int) -> None:
    """Jobs queued one per message before the intent queue existed still run after an upgrade."""
    intents.record_intent(message_id=message_id)
