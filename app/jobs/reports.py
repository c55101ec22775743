"""Report rollups, refreshed off the webhook path."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services.reports import rollup


# The watermark moves once a day (an hour after Shanghai midnight); the hourly runs in between recompute
# the last days again, which corrects anything a late change left behind.
@every(3600)
def refresh_report_rollups() -> str:
    result = rollup.refresh()
    return f"{rollup.NAME}: {result.rows} rows, complete before {result.complete_before}"
