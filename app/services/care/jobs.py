"""Elder care jobs: device outages, missed check-ins (detected, then raised in batches), re-alerts, notices."""
from __future__ import annotations

from app.core.tasks import job
from app.services.care import checkins, device_watch, realerts


@job("care.sweep_devices", queue="default", every=60)
def sweep_devices() -> dict:
    return device_watch.sweep()


@job("care.detect_missed", queue="escalation", every=5)  # a deadline is seen within 5 s (docs/benchmarks.md)
def detect_missed() -> dict:
    """Every 5 s: a missed check-in is found within one period of its time."""
    return checkins.detect_missed()


@job("care.raise_missed", queue="escalation")
def raise_missed(enrolment_ids: list[int]) -> int:
    return checkins.raise_missed(enrolment_ids=enrolment_ids)


@job("care.tell_contacts_missed", queue="outbound")
def tell_contacts_missed(alert_id: int) -> int:
    return checkins.tell_contacts_missed(alert_id=alert_id)


@job("care.tell_contacts_missed_many", queue="outbound")
def tell_contacts_missed_many(alert_ids: list[int]) -> int:
    return checkins.tell_contacts_missed_many(alert_ids=alert_ids)


@job("care.realert_accepted", queue="escalation", every=60)
def realert_accepted() -> int:
    return realerts.sweep()
