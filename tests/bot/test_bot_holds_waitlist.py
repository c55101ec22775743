"""The trained bot's booking form holds the picked seat and offers a full day's waitlist (issue 23), through the
app's signed WeChat webhook, against the app's real hold and waitlist routes."""
from __future__ import annotations

from datetime import datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.core.extensions import db
from app.models import Appointment, OutboundMessage, SlotHold, WaitlistEntry
from app.models.base import utcnow
from app.services import booking
from tests.bot.test_bot_through_wechat import resident_on_wechat, say
from tests.factories import DepartmentFactory, DoctorFactory, SlotFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def day_after_tomorrow():
    # Not tomorrow: cancelling tomorrow's seat (which frees it for the waitlist) closes at 15:00 today.
    return datetime.now(SHANGHAI).date() + timedelta(days=2)


def holds_of(resident_id: int) -> list[SlotHold]:
    db.session.expire_all()
    return list(db.session.scalars(select(SlotHold).where(SlotHold.resident_id == resident_id).order_by(SlotHold.id)))


def test_the_picked_slot_is_held_then_confirmed(bot_stack, committed):
    department = DepartmentFactory(name="内科")
    slot = SlotFactory(doctor=DoctorFactory(department=department, name="赵医生"), department=department,
                       day=day_after_tomorrow(), at=clock(9, 0), capacity=1)
    resident = resident_on_wechat("o_bot_hold")

    say(bot_stack, "o_bot_hold", "我要挂后天的内科")
    asked = say(bot_stack, "o_bot_hold", "1")
    assert "保留5分钟" in asked and "确认" in asked
    [hold] = holds_of(resident.id)
    assert hold.status == "held" and hold.slot_id == slot.id

    assert "预约成功" in say(bot_stack, "o_bot_hold", "是的")
    [hold] = holds_of(resident.id)
    assert hold.status == "confirmed"
    appointment = db.session.scalar(select(Appointment).where(Appointment.booked_by_resident_id == resident.id))
    assert appointment.slot_id == slot.id and appointment.status == "booked"


def test_a_hold_that_ran_out_is_refused_at_confirmation(bot_stack, committed):
    department = DepartmentFactory(name="内科")
    SlotFactory(doctor=DoctorFactory(department=department, name="赵医生"), department=department,
                day=day_after_tomorrow(), at=clock(9, 0), capacity=1)
    resident = resident_on_wechat("o_bot_hold_expired")

    say(bot_stack, "o_bot_hold_expired", "我要挂后天的内科")
    say(bot_stack, "o_bot_hold_expired", "1")
    # The resident waited too long: the hold's time is over (what the clock would do).
    db.session.execute(update(SlotHold).where(SlotHold.resident_id == resident.id)
                       .values(created_at=utcnow() - timedelta(minutes=10), expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    reply = say(bot_stack, "o_bot_hold_expired", "是的")
    assert "保留时间已过" in reply and "09:00" in reply  # the seat is free again and offered anew
    db.session.expire_all()
    assert db.session.scalar(select(Appointment).where(Appointment.booked_by_resident_id == resident.id)) is None


def test_a_full_day_offers_the_waitlist_and_a_freed_seat_is_accepted_in_the_chat(bot_stack, committed):
    department = DepartmentFactory(name="内科")
    slot = SlotFactory(doctor=DoctorFactory(department=department, name="赵医生"), department=department,
                       day=day_after_tomorrow(), at=clock(9, 0), capacity=1)
    other = resident_on_wechat("o_bot_other")
    taken = booking.book_slot(resident_id=other.id, slot_id=slot.id)
    resident = resident_on_wechat("o_bot_waitlist")

    assert "要排队等候吗" in say(bot_stack, "o_bot_waitlist", "我要挂后天的内科")
    assert "排第1位" in say(bot_stack, "o_bot_waitlist", "好")
    db.session.expire_all()
    [entry] = db.session.scalars(select(WaitlistEntry).where(WaitlistEntry.resident_id == resident.id)).all()
    assert entry.status == "waiting"

    # Joining twice is answered, not an error, and adds nobody.
    say(bot_stack, "o_bot_waitlist", "我要挂后天的内科")
    assert "已经在排" in say(bot_stack, "o_bot_waitlist", "好")
    assert "排第1位" in say(bot_stack, "o_bot_waitlist", "我排到第几了")
    db.session.expire_all()
    assert len(db.session.scalars(select(WaitlistEntry).where(WaitlistEntry.resident_id == resident.id)).all()) == 1

    booking.cancel_appointment(resident_id=other.id, appointment_id=taken.id)  # a seat frees: offered to us
    db.session.expire_all()
    notice = db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "waitlist_offer"))
    assert notice is not None and "候补到号" in notice.body

    assert "预约成功" in say(bot_stack, "o_bot_waitlist", "确认候补")
    db.session.expire_all()
    appointment = db.session.scalar(select(Appointment).where(Appointment.booked_by_resident_id == resident.id))
    assert appointment.slot_id == slot.id and appointment.status == "booked"


def test_accepting_a_lapsed_offer_is_refused(bot_stack, committed):
    department = DepartmentFactory(name="内科")
    slot = SlotFactory(doctor=DoctorFactory(department=department, name="赵医生"), department=department,
                       day=day_after_tomorrow(), at=clock(9, 0), capacity=1)
    other = resident_on_wechat("o_bot_other2")
    taken = booking.book_slot(resident_id=other.id, slot_id=slot.id)
    resident = resident_on_wechat("o_bot_lapsed")
    say(bot_stack, "o_bot_lapsed", "我要挂后天的内科")
    say(bot_stack, "o_bot_lapsed", "好")
    booking.cancel_appointment(resident_id=other.id, appointment_id=taken.id)
    db.session.execute(update(SlotHold).where(SlotHold.resident_id == resident.id, SlotHold.kind == "offer")
                       .values(created_at=utcnow() - timedelta(minutes=40), expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    assert "过了保留时间" in say(bot_stack, "o_bot_lapsed", "确认候补")
    db.session.expire_all()
    assert db.session.scalar(select(Appointment).where(Appointment.booked_by_resident_id == resident.id)) is None
