"""Deprecated: the service-token booking API (/api/booking), kept for callers written before /api/v1.

It predates the resident mobile API: callers are trusted services holding the service token and name the resident
in the path (see docs/booking.md). Residents now book through /api/v1 with their own token, and the bot through
/api/internal. Every answer carries `Deprecation` and a `Link` to the successor (RFC 9745, RFC 8288), and the
OpenAPI document marks its operations deprecated; it goes once no caller is left.
"""
from __future__ import annotations

from apiflask import APIBlueprint

from app.api.internal.blueprint import require_service_token
from app.api.schemas.booking import (
    AppointmentEnvelope,
    AppointmentsOut,
    AppointmentsQuery,
    BookIn,
    DepartmentsOut,
    PatientEnvelope,
    PatientIn,
    PatientPatch,
    PatientsOut,
    RescheduleIn,
    SlotListOut,
    SlotSearchQuery,
)
from app.services import booking

bp = APIBlueprint("booking", __name__, url_prefix="/api/booking", tag="Booking")
bp.before_request(require_service_token)
SUCCESSOR = '</api/v1>; rel="successor-version"'


@bp.after_request
def _announce_deprecation(response):
    response.headers["Deprecation"] = "true"
    response.headers["Link"] = SUCCESSOR
    return response

RESIDENT = "/residents/<int:resident_id>"


@bp.get("/departments")
@bp.output(DepartmentsOut)
@bp.doc(summary="Departments that take bookings")
def departments():
    return {"departments": booking.list_departments()}


@bp.get("/slots")
@bp.input(SlotSearchQuery, location="query", arg_name="query")
@bp.output(SlotListOut)
@bp.doc(summary="Free, released slots by department, date range, doctor and session", responses=[404, 422])
def search_slots(query):
    return {"slots": booking.search_free_slots(**query)}


@bp.get(f"{RESIDENT}/appointments")
@bp.input(AppointmentsQuery, location="query", arg_name="query")
@bp.output(AppointmentsOut)
@bp.doc(summary="The resident's appointments, earliest visit first")
def list_appointments(resident_id: int, query):
    return {"appointments": booking.list_appointments(
        resident_id=resident_id, patient_id=query.get("patient_id"), active_only=query["active"])}


@bp.post(f"{RESIDENT}/appointments")
@bp.input(BookIn, arg_name="body")
@bp.output(AppointmentEnvelope, status_code=201)
@bp.doc(summary="Book a slot for one of the resident's patients", responses=[404, 409, 422])
def book(resident_id: int, body):
    return {"appointment": booking.book_slot(resident_id=resident_id, **body)}


@bp.post(f"{RESIDENT}/appointments/<int:appointment_id>/cancel")
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Cancel an appointment (until the deadline)", responses=[404, 409])
def cancel(resident_id: int, appointment_id: int):
    return {"appointment": booking.cancel_appointment(resident_id=resident_id, appointment_id=appointment_id)}


@bp.post(f"{RESIDENT}/appointments/<int:appointment_id>/reschedule")
@bp.input(RescheduleIn, arg_name="body")
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Move an appointment to another slot: both seats change or neither", responses=[404, 409, 422])
def reschedule(resident_id: int, appointment_id: int, body):
    return {"appointment": booking.reschedule_appointment(
        resident_id=resident_id, appointment_id=appointment_id, new_slot_id=body["slot_id"])}


@bp.post("/appointments/<int:appointment_id>/attended")
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Staff: the patient came", responses=[404, 409])
def attended(appointment_id: int):
    return {"appointment": booking.mark_attended(appointment_id=appointment_id)}


@bp.post("/appointments/<int:appointment_id>/noshow")
@bp.output(AppointmentEnvelope)
@bp.doc(summary="Staff: the patient did not come (3 in 90 days suspend booking)", responses=[404, 409])
def noshow(appointment_id: int):
    return {"appointment": booking.mark_noshow(appointment_id=appointment_id)}


@bp.get(f"{RESIDENT}/patients")
@bp.output(PatientsOut)
@bp.doc(summary="The resident and the family members they book for")
def list_patients(resident_id: int):
    return {"patients": booking.list_patients(resident_id=resident_id)}


@bp.post(f"{RESIDENT}/patients")
@bp.input(PatientIn, arg_name="body")
@bp.output(PatientEnvelope, status_code=201)
@bp.doc(summary="Register a family member (ID number checked, stored encrypted, shown masked)",
        responses=[404, 409, 422])
def add_patient(resident_id: int, body):
    return {"patient": booking.add_patient(resident_id=resident_id, **body)}


@bp.patch(f"{RESIDENT}/patients/<int:patient_id>")
@bp.input(PatientPatch, arg_name="body")
@bp.output(PatientEnvelope)
@bp.doc(summary="Edit a family member", responses=[404, 409, 422])
def edit_patient(resident_id: int, patient_id: int, body):
    return {"patient": booking.update_patient(resident_id=resident_id, patient_id=patient_id, **body)}


@bp.delete(f"{RESIDENT}/patients/<int:patient_id>")
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a family member (refused while they hold a booking)", responses=[404, 409])
def remove_patient(resident_id: int, patient_id: int):
    booking.remove_patient(resident_id=resident_id, patient_id=patient_id)
    return ""
