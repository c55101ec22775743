"""Request and response bodies of the booking APIs (the bot's and the resident/staff one).

Times go out in Asia/Shanghai with their offset; ID numbers go out masked, by construction: the
field that shows one only ever sees its last four characters.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from apiflask import Schema
from apiflask.fields import Boolean, Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.api.schemas.fields import Trimmed
from app.models.booking import SESSIONS
from app.services import residents
from app.services.booking import RELATIONS

SHANGHAI = ZoneInfo("Asia/Shanghai")


class LocalDateTime(DateTime):
    """An ISO 8601 time in Asia/Shanghai (+08:00), as residents and the bot read it."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.astimezone(SHANGHAI).isoformat()


class MaskedIdNumber(String):
    """Reads `id_number_last4` and shows `**************1234`."""

    def __init__(self, **kwargs):
        super().__init__(attribute="id_number_last4", metadata={"example": residents.mask("1234")}, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else residents.mask(value)


# --- the bot's shapes (docs/contracts.md) -----------------------------------------------------

class DepartmentOut(Schema):
    id = Integer()
    name = String()
    hospital = String(attribute="hospital.name")


class DepartmentsOut(Schema):
    departments = List(Nested(DepartmentOut))


class BotSlotsQuery(Schema):
    sender = String(required=True, validate=Length(1, 40))
    department = String(required=True, validate=Length(1, 50), metadata={"description": "name or id"})
    date = Date(required=True, metadata={"description": "YYYY-MM-DD in Asia/Shanghai"})
    session = String(validate=OneOf(SESSIONS))
    limit = Integer(load_default=5, validate=Range(1, 50))


class SlotOut(Schema):
    id = Integer()
    department = String(attribute="department.name")
    doctor = String(attribute="doctor.name")
    doctor_title = String(attribute="doctor.title")
    start = LocalDateTime(attribute="start_at")
    end = LocalDateTime(attribute="end_at")
    free = Integer()


class SlotsOut(Schema):
    slots = List(Nested(SlotOut))


class SenderIn(Schema):
    sender = String(required=True, validate=Length(1, 40))


class BotBookIn(SenderIn):
    slot_id = Integer(required=True, validate=Range(min=1))


class BotRescheduleIn(SenderIn):
    slot_id = Integer(required=True, validate=Range(min=1))


class BotAppointmentOut(Schema):
    id = Integer()
    slot_id = Integer()
    department = String(attribute="department.name")
    doctor = String(attribute="slot.doctor.name")
    start = LocalDateTime(attribute="slot.start_at")
    status = String()
    patient_name = String(attribute="patient.name")


class BotAppointmentEnvelope(Schema):
    appointment = Nested(BotAppointmentOut)


class BotAppointmentsOut(Schema):
    appointments = List(Nested(BotAppointmentOut))


class BotHoldIn(SenderIn):
    slot_id = Integer(required=True, validate=Range(min=1))


class BotHoldOut(Schema):
    id = Integer()
    kind = String(metadata={"description": "hold (a slot chosen) or offer (a seat from the waitlist)"})
    status = String(metadata={"description": "held, confirmed, released or expired"})
    slot_id = Integer()
    department = String(attribute="slot.department.name")
    doctor = String(attribute="slot.doctor.name")
    start = LocalDateTime(attribute="slot.start_at")
    expires_at = LocalDateTime()
    patient_name = String(attribute="patient.name")


class BotHoldEnvelope(Schema):
    hold = Nested(BotHoldOut)


class BotWaitlistIn(SenderIn):
    department = String(required=True, validate=Length(1, 50), metadata={"description": "name or id"})
    date = Date(required=True, metadata={"description": "YYYY-MM-DD in Asia/Shanghai"})


class BotWaitlistEntryOut(Schema):
    id = Integer()
    department = String(attribute="department.name")
    date = Date(attribute="local_date")
    status = String(metadata={"description": "waiting, offered, booked, lapsed or left"})
    position = Integer(allow_none=True, metadata={"description": "while waiting: 1 is offered the next seat"})
    patient_name = String(attribute="patient.name")
    offer = Nested(BotHoldOut, allow_none=True, metadata={"description": "the live offer while offered"})


class BotWaitlistEntryEnvelope(Schema):
    entry = Nested(BotWaitlistEntryOut)


class BotWaitlistOut(Schema):
    entries = List(Nested(BotWaitlistEntryOut))


# --- the resident / staff API (/api/booking) --------------------------------------------------

class SlotSearchQuery(Schema):
    department = String(required=True, validate=Length(1, 50), metadata={"description": "name or id"})
    date_from = Date(required=True)
    date_to = Date()
    doctor_id = Integer(validate=Range(min=1))
    session = String(validate=OneOf(SESSIONS))
    limit = Integer(load_default=50, validate=Range(1, 200))


class SlotDetailOut(SlotOut):
    hospital = String(attribute="department.hospital.name")
    doctor_id = Integer()
    session = String()
    capacity = Integer()


class SlotListOut(Schema):
    slots = List(Nested(SlotDetailOut))


class PatientIn(Schema):
    name = Trimmed(required=True, validate=Length(1, 50))
    id_number = String(required=True, validate=Length(1, 32), load_only=True)
    relation = String(load_default="self", validate=OneOf(RELATIONS))
    phone = String(validate=Length(max=20))


class PatientPatch(Schema):
    name = Trimmed(validate=Length(1, 50))
    id_number = String(validate=Length(1, 32), load_only=True)
    relation = String(validate=OneOf(RELATIONS))
    phone = String(validate=Length(max=20))


class PatientOut(Schema):
    id = Integer()
    name = String()
    relation = String()
    id_number_masked = MaskedIdNumber()
    phone = String(allow_none=True)
    suspended_until = LocalDateTime(allow_none=True)


class PatientEnvelope(Schema):
    patient = Nested(PatientOut)


class PatientsOut(Schema):
    patients = List(Nested(PatientOut))


class PatientRef(Schema):
    id = Integer()
    name = String()
    id_number_masked = MaskedIdNumber()


class AppointmentOut(Schema):
    id = Integer()
    slot_id = Integer()
    seat_no = Integer()
    status = String()
    hospital = String(attribute="department.hospital.name")
    department = String(attribute="department.name")
    doctor = String(attribute="slot.doctor.name")
    doctor_title = String(attribute="slot.doctor.title")
    start = LocalDateTime(attribute="slot.start_at")
    end = LocalDateTime(attribute="slot.end_at")
    patient = Nested(PatientRef)
    created_at = LocalDateTime()
    cancelled_at = LocalDateTime(allow_none=True)


class AppointmentEnvelope(Schema):
    appointment = Nested(AppointmentOut)


class AppointmentsOut(Schema):
    appointments = List(Nested(AppointmentOut))


class AppointmentsQuery(Schema):
    patient_id = Integer(validate=Range(min=1))
    active = Boolean(load_default=False, metadata={"description": "only upcoming booked ones"})


class BookIn(Schema):
    slot_id = Integer(required=True, validate=Range(min=1))
    patient_id = Integer(validate=Range(min=1), metadata={"description": "default: the resident's own record"})


class RescheduleIn(Schema):
    slot_id = Integer(required=True, validate=Range(min=1))


class HoldIn(Schema):
    slot_id = Integer(required=True, validate=Range(min=1))
    patient_id = Integer(validate=Range(min=1), metadata={"description": "default: the resident's own record"})


class HoldOut(Schema):
    id = Integer()
    kind = String(metadata={"description": "hold (a slot chosen) or offer (a seat from the waitlist)"})
    status = String(metadata={"description": "held, confirmed, released or expired"})
    slot_id = Integer()
    hospital = String(attribute="slot.department.hospital.name")
    department = String(attribute="slot.department.name")
    doctor = String(attribute="slot.doctor.name")
    start = LocalDateTime(attribute="slot.start_at")
    end = LocalDateTime(attribute="slot.end_at")
    expires_at = LocalDateTime(metadata={"description": "the seat is held until then"})
    patient = Nested(PatientRef)
    appointment_id = Integer(allow_none=True, metadata={"description": "once confirmed"})


class HoldEnvelope(Schema):
    hold = Nested(HoldOut)


class WaitlistIn(Schema):
    department_id = Integer(required=True, validate=Range(min=1))
    date = Date(required=True, metadata={"description": "YYYY-MM-DD in Asia/Shanghai"})
    patient_id = Integer(validate=Range(min=1), metadata={"description": "default: the resident's own record"})


class WaitlistEntryOut(Schema):
    id = Integer()
    department_id = Integer()
    department = String(attribute="department.name")
    hospital = String(attribute="department.hospital.name")
    date = Date(attribute="local_date")
    status = String(metadata={"description": "waiting, offered, booked, lapsed or left"})
    position = Integer(allow_none=True, metadata={"description": "while waiting: 1 is offered the next seat"})
    patient = Nested(PatientRef)
    offer = Nested(HoldOut, allow_none=True, metadata={"description": "the live offer while offered"})
    created_at = LocalDateTime()


class WaitlistEntryEnvelope(Schema):
    entry = Nested(WaitlistEntryOut)


class WaitlistOut(Schema):
    entries = List(Nested(WaitlistEntryOut))
