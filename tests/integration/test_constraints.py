"""The database itself refuses data that would break the domain's promises."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.core.extensions import db
from app.models import Appointment, ChannelIdentity, OutboundMessage, Slot
from tests.factories import ChannelIdentityFactory, PatientFactory, ResidentFactory, SlotFactory


def _flush_fails():
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_channel_address_belongs_to_one_resident_only(session):
    ChannelIdentityFactory(channel="wechat", external_id="openid-dup")
    db.session.add(ChannelIdentity(resident=ResidentFactory(), channel="wechat", external_id="openid-dup"))
    _flush_fails()


def _appointment(slot: Slot, seat_no: int, **overrides) -> Appointment:
    patient = PatientFactory()
    values = dict(slot_id=slot.id, seat_no=seat_no, patient_id=patient.id, booked_by_resident_id=patient.resident_id,
                  department_id=slot.department_id, local_date=slot.local_date, status="booked")
    values.update(overrides)
    return Appointment(**values)


def test_a_seat_of_a_slot_is_held_by_one_active_appointment(session):
    slot = SlotFactory()
    db.session.add(_appointment(slot, 1))
    db.session.flush()
    db.session.add(_appointment(slot, 1))
    _flush_fails()


def test_a_cancelled_appointment_frees_its_seat_for_the_next_booking(session):
    slot = SlotFactory()
    db.session.add(_appointment(slot, 1, status="cancelled"))
    db.session.add(_appointment(slot, 1))
    db.session.flush()


def test_a_slot_cannot_count_more_bookings_than_seats(session):
    slot = SlotFactory(capacity=2)
    slot.booked_count = 3
    _flush_fails()


def test_an_outbound_message_needs_a_conversation(session):
    db.session.add(OutboundMessage(conversation_id=None, channel="sms", to_address="+8613800000000", body="hi"))
    _flush_fails()


def test_an_outbound_message_for_an_unknown_conversation_is_refused(session):
    db.session.add(OutboundMessage(conversation_id=987654, channel="sms", to_address="+8613800000000", body="hi"))
    _flush_fails()
