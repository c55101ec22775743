"""Hospital appointments from the app, straight through the booking services (no rule of its own)."""
from __future__ import annotations

from app.api.schemas.booking import (
    AppointmentEnvelope,
    BookIn,
    DepartmentsOut,
    RescheduleIn,
    SlotListOut,
    SlotSearchQuery,
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
