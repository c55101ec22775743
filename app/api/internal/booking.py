"""The bot's booking routes: departments, free slots, and the sender's own appointments."""
from __future__ import annotations

from app.api.internal.blueprint import bp
from app.api.schemas.booking import (
    BotAppointmentEnvelope,
    BotAppointmentsOut,
    BotBookIn,
    BotRescheduleIn,
    BotSlotsQuery,
    DepartmentsOut,
    SenderIn,
    SlotsOut,
)
from app.services import booking
from app.services.residents import conversation_by_sender


def _resident_of(sender: str) -> int:
    """Who is asking: the bot's sender id names a conversation, and that its resident (404 unknown_sender)."""
    return conversation_by_sender(sender=sender).resident_id


@bp.get("/departments")
@bp.output(DepartmentsOut)
@bp.doc(summary="Departments that take bookings")
def departments():
    return {"departments": booking.list_departments()}


@bp.get("/slots")
@bp.input(BotSlotsQuery, location="query", arg_name="query")
@bp.output(SlotsOut)
@bp.doc(summary="Free, released slots of a department on a day, earliest first", responses=[404, 422])
def free_slots(query):
    _resident_of(query["sender"])
    return {"slots": booking.search_free_slots(department=query["department"], date_from=query["date"],
                                              session=query.get("session"), limit=query["limit"])}


@bp.post("/appointments")
@bp.input(BotBookIn, arg_name="body")
@bp.output(BotAppointmentEnvelope, status_code=201)
@bp.doc(summary="Book a slot for the sender's own patient record", responses=[404, 409, 422])
def book(body):
    return {"appointment": booking.book_slot(resident_id=_resident_of(body["sender"]), slot_id=body["slot_id"])}


@bp.get("/appointments")
@bp.input(SenderIn, location="query", arg_name="query")
@bp.output(BotAppointmentsOut)
@bp.doc(summary="The sender's upcoming appointments, earliest first", responses=[404])
def appointments(query):
    return {"appointments": booking.list_appointments(resident_id=_resident_of(query["sender"]), active_only=True)}


@bp.post("/appointments/<int:appointment_id>/cancel")
@bp.input(SenderIn, arg_name="body")
@bp.output(BotAppointmentEnvelope)
@bp.doc(summary="Cancel one of the sender's appointments", responses=[404, 409])
def cancel(appointment_id: int, body):
    return {"appointment": booking.cancel_appointment(resident_id=_resident_of(body["sender"]),
                                                      appointment_id=appointment_id)}


@bp.post("/appointments/<int:appointment_id>/reschedule")
@bp.input(BotRescheduleIn, arg_name="body")
@bp.output(BotAppointmentEnvelope)
@bp.doc(summary="Move one of the sender's appointments to another slot (atomic)", responses=[404, 409, 422])
def reschedule(appointment_id: int, body):
    return {"appointment": booking.reschedule_appointment(
        resident_id=_resident_of(body["sender"]), appointment_id=appointment_id, new_slot_id=body["slot_id"])}
