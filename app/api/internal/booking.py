"""The bot's booking routes: departments, free slots, the sender's own appointments, held seats and the waitlist."""
from __future__ import annotations

from app.api.internal.blueprint import bp
from app.api.schemas.booking import (
    BotAppointmentEnvelope,
    BotAppointmentsOut,
    BotBookIn,
    BotHoldEnvelope,
    BotHoldIn,
    BotRescheduleIn,
    BotSlotsQuery,
    BotWaitlistEntryEnvelope,
    BotWaitlistIn,
    BotWaitlistOut,
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


# --- held seats and the waitlist: the booking form holds the chosen slot, then confirms (docs/booking.md) -------

@bp.post("/holds")
@bp.input(BotHoldIn, arg_name="body")
@bp.output(BotHoldEnvelope, status_code=201)
@bp.doc(summary="Hold a seat of a slot for the sender's own patient record while they confirm",
        responses=[404, 409, 422])
def hold(body):
    return {"hold": booking.hold_slot(resident_id=_resident_of(body["sender"]), slot_id=body["slot_id"])}


@bp.post("/holds/<int:hold_id>/confirm")
@bp.input(SenderIn, arg_name="body")
@bp.output(BotAppointmentEnvelope, status_code=201)
@bp.doc(summary="Book the held seat (409 hold_expired once it ran out)", responses=[404, 409])
def confirm_hold(hold_id: int, body):
    return {"appointment": booking.confirm_hold(resident_id=_resident_of(body["sender"]), hold_id=hold_id)}


@bp.post("/holds/<int:hold_id>/release")
@bp.input(SenderIn, arg_name="body")
@bp.output(BotHoldEnvelope)
@bp.doc(summary="Give a held seat back (an offer: decline it)", responses=[404, 409])
def release_hold(hold_id: int, body):
    return {"hold": booking.release_hold(resident_id=_resident_of(body["sender"]), hold_id=hold_id)}


@bp.post("/waitlist")
@bp.input(BotWaitlistIn, arg_name="body")
@bp.output(BotWaitlistEntryEnvelope, status_code=201)
@bp.doc(summary="Put the sender's own patient record on a full department's waitlist for a day",
        responses=[404, 409, 422])
def join_waitlist(body):
    resident_id = _resident_of(body["sender"])
    return {"entry": booking.join_waitlist(resident_id=resident_id, department_id=booking.department_id_of(
        body["department"]), day=body["date"])}


@bp.get("/waitlist")
@bp.input(SenderIn, location="query", arg_name="query")
@bp.output(BotWaitlistOut)
@bp.doc(summary="The sender's waitlist entries from today on, with their live offers", responses=[404])
def waitlist(query):
    return {"entries": booking.list_waitlist(resident_id=_resident_of(query["sender"]))}


@bp.post("/waitlist/<int:entry_id>/accept")
@bp.input(SenderIn, arg_name="body")
@bp.output(BotAppointmentEnvelope, status_code=201)
@bp.doc(summary="Book the seat offered to a waitlist entry (409 offer_lapsed once it ran out)", responses=[404, 409])
def accept_offer(entry_id: int, body):
    return {"appointment": booking.accept_offer(resident_id=_resident_of(body["sender"]), entry_id=entry_id)}


@bp.post("/waitlist/<int:entry_id>/leave")
@bp.input(SenderIn, arg_name="body")
@bp.output(BotWaitlistEntryEnvelope)
@bp.doc(summary="Leave the waitlist (a live offer is declined and goes to the next in line)", responses=[404])
def leave_waitlist(entry_id: int, body):
    return {"entry": booking.leave_waitlist(resident_id=_resident_of(body["sender"]), entry_id=entry_id)}
