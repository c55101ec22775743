"""Family members the resident books for (booking's patients); ID numbers only ever leave masked."""
from __future__ import annotations

from app.api.schemas.booking import PatientEnvelope, PatientIn, PatientPatch, PatientsOut
from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current, idempotent
from app.services import booking

TAG = "Mobile: family"


@bp.get("/family")
@bp.auth_required(auth)
@bp.output(PatientsOut)
@bp.doc(summary="The resident and the family members they book for", tags=[TAG])
def list_family():
    return {"patients": booking.list_patients(resident_id=current().resident_id)}


@bp.post("/family")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(PatientIn, arg_name="body")
@bp.output(PatientEnvelope, status_code=201)
@bp.doc(summary="Add a family member (ID number checked, stored encrypted)", tags=[TAG], responses=[409, 422])
def add_member(body):
    return {"patient": booking.add_patient(resident_id=current().resident_id, **body)}


@bp.patch("/family/<int:patient_id>")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(PatientPatch, arg_name="body")
@bp.output(PatientEnvelope)
@bp.doc(summary="Edit a family member", tags=[TAG], responses=[404, 409, 422])
def edit_member(patient_id: int, body):
    return {"patient": booking.update_patient(resident_id=current().resident_id, patient_id=patient_id,
                                                       **body)}


@bp.delete("/family/<int:patient_id>")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a family member (refused while they hold a booking)", tags=[TAG], responses=[404, 409])
def remove_member(patient_id: int):
    booking.remove_patient(resident_id=current().resident_id, patient_id=patient_id)
    return ""
