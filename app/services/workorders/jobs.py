"""Work-order jobs: the timers' sweep (warnings, breaches), the lead's breach SMS, follow-ups and duplicates."""
from __future__ import annotations

from app.core.tasks import job
from app.services.workorders import duplicates, followup, timers


@job("workorders.sweep_timers", every=60)
def sweep_timers() -> int:
    return len(timers.sweep())


@job("workorders.text_lead", queue="outbound")
def text_lead(work_order_id: int) -> str | None:
    return timers.text_lead(work_order_id=work_order_id)


@job("workorders.sweep_followups", every=300)
def sweep_followups() -> int:
    asked, expired = followup.sweep()
    return asked + expired


@job("workorders.link_duplicates", every=60)
def link_duplicates() -> int:
    return len(duplicates.link_new_reports()) + duplicates.tell_resolved_parents()
