"""Held seats without a database: the sweep's registration, what a slot shows as free, the offer's notice."""
from __future__ import annotations

from datetime import date, time, timedelta

from app.core.tasks import periodic
from app.models import Department, Hospital, Patient, Slot, SlotHold
from app.services.booking.seats import offer_text
from app.services.delivery.sms_text import segment
from tests.factories import local_dt

DAY = date(2031, 3, 12)


def test_the_expiry_sweep_runs_every_half_minute_on_the_default_queue():
    sweep, = [t for t in periodic() if t.name == "booking.release_expired_holds"]
    assert (sweep.every_seconds, sweep.queue) == (30, "default")
    assert sweep.path == "app.services.booking.jobs.release_expired_holds"


def test_a_slot_shows_booked_and_held_seats_as_taken_but_holds_past_their_time_as_free():
    slot = Slot(capacity=5, booked_count=2, held_count=2)
    assert slot.free == 1
    slot.expired_holds = 1  # loaded by search_free_slots
    assert slot.free == 2


def test_the_offer_notice_names_patient_visit_and_deadline_in_one_sms_part():
    department = Department(name="内科", hospital=Hospital(name="幸福社区卫生服务中心"))
    start = local_dt(DAY, time(9, 30))
    slot = Slot(department=department, start_at=start, end_at=start + timedelta(minutes=30))
    offer = SlotHold(slot=slot, patient=Patient(name="王建国"), kind="offer",
                     expires_at=local_dt(DAY - timedelta(days=1), time(16, 45)))

    text = offer_text(offer)

    assert text == "【邻里】候补到号：王建国03月12日09:30幸福社区卫生服务中心内科，保留至16:45，回复“确认候补”约上，逾期让给下一位。"
    assert len(segment(text)) == 1
