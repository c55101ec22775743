"""Jobs queued in Redis before the regroup name their function by its old path (app.jobs.<module>.<name>).

RQ imports that path when a worker runs the job; for one release every such path must still lead to the job now
declared beside its domain, or an upgrade would drop whatever was queued (help alert steps included).
"""
from __future__ import annotations

import importlib

import pytest

from app.core import tasks

OLD_PATHS = {
    "app.jobs.outbox.deliver_outbound": "delivery.deliver",
    "app.jobs.outbox.sweep_outbox": "delivery.sweep_outbox",
    "app.jobs.help.advance_alert": "help.advance_alert",
    "app.jobs.help.sweep_help_alerts": "help.sweep_alerts",
    "app.jobs.help.tell_contacts_taken": "help.tell_contacts_taken",
    "app.jobs.help.send_contact_sms_job": "help.send_contact_sms",
    "app.jobs.conversations.queue_late_reply": "conversations.queue_late_reply",
    "app.jobs.conversations.hand_over_lost_late_answers": "conversations.hand_over_lost_late_answers",
    "app.jobs.conversations.requeue_late_replies": "conversations.requeue_late_replies",
    "app.jobs.booking.sweep_booking_reminders": "booking.sweep_reminders",
    "app.jobs.schedules.generate_upcoming_slots": "booking.generate_upcoming_slots",
    "app.jobs.bot.classify_pending": "reports.classify_pending",
    "app.jobs.bot.record_intent": "reports.record_intent",
    "app.jobs.reports.refresh_report_rollups": "reports.refresh_rollups",
    "app.jobs.tickets.flag_sla_breaches": "tickets.flag_sla_breaches",
    "app.jobs.tickets.offer_unassigned_tickets": "tickets.offer_unassigned",
    "app.jobs.tickets.close_resolved_tickets": "tickets.close_resolved",
    "app.jobs.housekeeping.purge_expired_idempotency_keys": "housekeeping.purge_idempotency_keys",
}


def resolve(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("old, name", sorted(OLD_PATHS.items()))
def test_an_old_job_path_runs_the_job_declared_now(old, name):
    assert resolve(old) is resolve(tasks.task(name).path)


def test_every_job_has_a_declared_name_and_the_names_are_unique():
    declared = tasks.registered()
    assert set(OLD_PATHS.values()) <= set(declared)
    assert len({t.path for t in declared.values()}) == len(declared)
