"""Hospital appointments, held seats and the waitlist from the app, straight through the booking services (no rule
of its own)."""
from __future__ import annotations

from app.api.schemas.booking import (
    AppointmentEnvelope,
    BookIn,
    DepartmentsOut,
    HoldEnvelope,
    HoldIn,
    RescheduleIn,
    SlotListOut,
    SlotSearchQuery,
    WaitlistEntryEnvelope,
    WaitlistIn,
    WaitlistOut,
)
from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current, idempotent
from app.api.v1.schemas import AppointmentsPage, AppointmentsPageQuery
from app.core.pagination import page_list
from app.services import booking

TAG = "Mobile: appointments"


@bp.get("/departments")
@bp.auth_required(auth)
@bp.output(DepartmentsOut)
@bp.doc(summary="Departments that take bookings", tags=[TAG])
def departments():
    return {"departments": booking.list_departments()}


@bp.get("/slots")
@bp.auth_required(auth)
@bp.input(SlotSearchQuery, location="query", arg_name="query")
@bp.output(SlotListOut)
@bp.doc(summary="Free, released slots by department, dates, doctor and session", tags=[TAG], responses=[404, 422])
def search_slots(query):
    return {"slots": booking.search_free_slots(**query)}


@bp.get("/appointments")
@bp.auth_required(auth)
@bp.input(AppointmentsPageQuery, location="query", arg_name="query")
@bp.output(AppointmentsPage)
@bp.doc(summary="The resident's appointments, earliest visit first", tags=[TAG], responses=[422])
def list_appointments(query):
    items = booking.list_appointments(resident_id=current().resident_id, patient_id=query.get("patient_id"),
                                      active_only=query["active"])
    page = page_list(items, scope=f"appointments:{current().resident_id}", key=lambda a: (a.slot.start_at, a.id),
                     cursor=query.get("cursor"), limit=query["limit"])
    return {"appointments": page.items, "next_cursor": page.next_cursor}


@bp.get("/appointments/<int:appointment_id>")
@bp.auth_required(auth)
@bp.output(AppointmentEnvelope)
@bp.doc(summary="One appointment", tags=[TAG], responses=[404])
def get_appointment(appointment_id: int):
    return {"appointment": booking.get_appointment(resident_id=current().resident_id, appointment_id=appointment_id)}


@bp.post("/appointments")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(BookIn, arg_name="body")
@bp.output(AppointmentEnvelope, status_code=201)
@bp.doc(summary="Book a slot for the resident or a family member", tags=[TAG], responses=[404, 409, 422])
def book(body):
    return {"appointment": booking.book_slot(resident_id=current().resident_id, **body)}


@bp.post("/appointments/<int:appointment_id>/cancel")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Cancel an appointment (until the deadline)", tags=[TAG], responses=[404, 409])
def cancel(appointment_id: int):
    return {"appointment": booking.cancel_appointment(resident_id=current().resident_id,
                                                      appointment_id=appointment_id)}


@bp.post("/appointments/<int:appointment_id>/reschedule")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(RescheduleIn, arg_name="body")
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Move an appointment to another slot: both seats change or neither", tags=[TAG],
        responses=[404, 409, 422])
def reschedule(appointment_id: int, body):
    return {"appointment": booking.reschedule_appointment(
        resident_id=current().resident_id, appointment_id=appointment_id, new_slot_id=body["slot_id"])}


# --- held seats: choose a slot, then confirm within BOOKING_HOLD_SECONDS (docs/booking.md) --------------------

@bp.post("/holds")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(HoldIn, arg_name="body")
@bp.output(HoldEnvelope, status_code=201)
@bp.doc(summary="Hold a seat of a slot for the resident or a family member while they confirm", tags=[TAG],
        responses=[404, 409, 422])
def hold(body):
    return {"hold": booking.hold_slot(resident_id=current().resident_id, **body)}


@bp.post("/holds/<int:hold_id>/confirm")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output(AppointmentEnvelope, status_code=201)
@bp.doc(summary="Book the held seat (409 hold_expired once it ran out)", tags=[TAG], responses=[404, 409])
def confirm_hold(hold_id: int):
    return {"appointment": booking.confirm_hold(resident_id=current().resident_id, hold_id=hold_id)}


@bp.delete("/holds/<int:hold_id>")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output(HoldEnvelope)
@bp.doc(summary="Give a held seat back (an offer: decline it)", tags=[TAG], responses=[404, 409])
def release_hold(hold_id: int):
    return {"hold": booking.release_hold(resident_id=current().resident_id, hold_id=hold_id)}


# --- the waitlist of a full department's day ------------------------------------------------------------------

@bp.post("/waitlist")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(WaitlistIn, arg_name="body")
@bp.output(WaitlistEntryEnvelope, status_code=201)
@bp.doc(summary="Join the waitlist of a department's day on which no seat is left", tags=[TAG],
        responses=[404, 409, 422])
def join_waitlist(body):
    return {"entry": booking.join_waitlist(resident_id=current().resident_id, department_id=body["department_id"],
                                           day=body["date"], patient_id=body.get("patient_id"))}


@bp.get("/waitlist")
@bp.auth_required(auth)
@bp.output(WaitlistOut)
@bp.doc(summary="The resident's waitlist entries from today on, with their live offers", tags=[TAG])
def waitlist():
    return {"entries": booking.list_waitlist(resident_id=current().resident_id)}


@bp.post("/waitlist/<int:entry_id>/accept")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output(AppointmentEnvelope, status_code=201)
@bp.doc(summary="Book the seat offered to a waitlist entry (409 offer_lapsed once it ran out)", tags=[TAG],
        responses=[404, 409])
def accept_offer(entry_id: int):
    return {"appointment": booking.accept_offer(resident_id=current().resident_id, entry_id=entry_id)}


@bp.delete("/waitlist/<int:entry_id>")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output(WaitlistEntryEnvelope)
@bp.doc(summary="Leave the waitlist (a live offer is declined and goes to the next in line)", tags=[TAG],
        responses=[404])
def leave_waitlist(entry_id: int):
    return {"entry": booking.leave_waitlist(resident_id=current().resident_id, entry_id=entry_id)}
