"""Reminders are found in the database when due, go through the outbox once, and skip cancellations."""
from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import select, update

from app.core.extensions import db
from app.models import Appointment, OutboundMessage
from app.services import outbox
from app.services.booking import appointments as booking
from app.services.booking import reminders as booking_reminders
from tests.factories import ChannelIdentityFactory, PatientFactory, ResidentFactory, local_dt
from tests.helpers.booking import DAY, NOW, clinic, resident_with_patient

EVENING = local_dt(DAY - timedelta(days=1), time(18, 0))


@pytest.fixture(autouse=True)
def dispatched(monkeypatch):
    """Delivery jobs are the outbox's business; here we only record which rows were handed over."""
    handed_over = []
    monkeypatch.setattr(outbox, "dispatch", lambda *, outbound_ids: handed_over.extend(outbound_ids))
    return handed_over


def _booked(slot=None, **kwargs):
    slot = slot or clinic()[0]
    resident, patient = resident_with_patient(conversation=True, **kwargs)
    return booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW), slot


def _reminders(appointment_id):
    return db.session.scalars(select(OutboundMessage).where(
        OutboundMessage.kind == "reminder", OutboundMessage.dedup_key.like(f"reminder:{appointment_id}:%"))
        .order_by(OutboundMessage.id)).all()


def test_nothing_is_due_before_the_evening_before(session):
    appointment, _ = _booked()
    assert (appointment.id, "evening") not in booking_reminders.due_reminders(now=EVENING - timedelta(minutes=1))


def test_the_evening_reminder_is_due_at_18_00_the_day_before(session):
    appointment, _ = _booked()
    assert (appointment.id, "evening") in booking_reminders.due_reminders(now=EVENING)


def test_the_soon_reminder_is_due_two_hours_before_and_replaces_a_missed_evening_one(session):
    appointment, slot = _booked()
    due = booking_reminders.due_reminders(now=slot.start_at - timedelta(hours=2))
    assert (appointment.id, "soon") in due and (appointment.id, "evening") not in due
    assert (appointment.id, "soon") not in booking_reminders.due_reminders(now=slot.start_at)


def test_a_booking_made_after_the_evening_time_gets_only_the_soon_reminder(session):
    slot, = clinic()
    resident, _ = resident_with_patient(conversation=True)
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=EVENING + timedelta(hours=2))
    assert (appointment.id, "evening") not in booking_reminders.due_reminders(now=EVENING + timedelta(hours=3))


def test_the_sweeper_queues_each_reminder_once_across_runs(session, dispatched):
    appointment, slot = _booked()
    assert booking_reminders.send_due_reminders(now=EVENING) >= 1
    booking_reminders.send_due_reminders(now=EVENING + timedelta(minutes=1))
    assert len(_reminders(appointment.id)) == 1
    soon = slot.start_at - timedelta(hours=2)
    booking_reminders.send_due_reminders(now=soon)
    booking_reminders.send_due_reminders(now=soon + timedelta(minutes=1))
    messages = _reminders(appointment.id)
    assert [m.dedup_key for m in messages] == [f"reminder:{appointment.id}:evening", f"reminder:{appointment.id}:soon"]
    assert all(m.id in dispatched for m in messages)
    assert "明天" in messages[0].body and messages[0].body.startswith("【邻里】")
    db.session.refresh(appointment)
    assert appointment.reminded_evening_at == EVENING and appointment.reminded_soon_at == soon


def test_a_cancelled_appointment_gets_no_reminder(session):
    appointment, _ = _booked()
    booking.cancel_appointment(resident_id=appointment.booked_by_resident_id, appointment_id=appointment.id, now=NOW)
    assert (appointment.id, "evening") not in booking_reminders.due_reminders(now=EVENING)
    assert booking_reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING) is None
    assert _reminders(appointment.id) == []


def test_a_reminder_already_in_the_outbox_is_not_queued_again(session):
    """Even if the reminded_* mark were lost, the outbox dedup key keeps the message single."""
    appointment, _ = _booked()
    first = booking_reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING)
    assert first is not None
    db.session.execute(update(Appointment).where(Appointment.id == appointment.id)
                       .values(reminded_evening_at=None))
    assert booking_reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING) is None
    assert len(_reminders(appointment.id)) == 1
    assert db.session.get(Appointment, appointment.id).reminded_evening_at is not None


def test_reminders_go_to_the_preferred_channel_creating_the_conversation(session):
    resident = ResidentFactory(preferred_channel="sms")
    ChannelIdentityFactory(resident=resident, channel="sms", external_id="+8613900000001")
    PatientFactory(resident=resident)
    slot, = clinic()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    message = booking_reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING)
    assert message.channel == "sms" and message.to_address == "+8613900000001"


def test_a_resident_with_no_channel_is_marked_and_not_retried(session):
    slot, = clinic()
    resident = ResidentFactory()
    PatientFactory(resident=resident)
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    assert booking_reminders.send_reminder(appointment_id=appointment.id, kind="evening", now=EVENING) is None
    assert (appointment.id, "evening") not in booking_reminders.due_reminders(now=EVENING + timedelta(minutes=1))


def test_the_sweeper_job_is_registered_with_the_ticker():
    from app.core import tasks
    from app.services.booking import jobs as booking_jobs

    assert any(t.path == f"{booking_jobs.__name__}.sweep_booking_reminders" and t.every_seconds == 60
               for t in tasks.periodic())
