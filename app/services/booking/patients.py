"""Patients a resident can book for: themself and the family members they registered (real names).

ID numbers are checked (GB 11643), stored encrypted with a keyed hash for duplicates, and only ever
leave this module masked; no message or log line carries one.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError

from app.core.config import setting
from app.core.errors import Conflict, NotFound
from app.core.extensions import db
from app.core.secrets_at_rest import encrypt, keyed_hash
from app.models import Appointment, Patient, Resident
from app.models.base import utcnow
from app.services import residents
from app.services.booking.errors import InvalidIdNumber, NoPatient, TooManyFamilyMembers

RELATIONS = ("self", "parent", "child", "spouse", "other")


def list_patients(*, resident_id: int) -> list[Patient]:
    """The resident's current patients, themself first."""
    return list(db.session.scalars(
        select(Patient).where(Patient.resident_id == resident_id, Patient.removed_at.is_(None))
        .order_by((Patient.relation != "self"), Patient.id)
    ))


def get_patient(*, resident_id: int, patient_id: int) -> Patient:
    """A patient of this resident; another resident's patient is as unknown as a missing one."""
    patient = db.session.get(Patient, patient_id)
    if patient is None or patient.resident_id != resident_id or patient.removed_at is not None:
        raise NotFound("no such patient")
    return patient


def own_patient(*, resident_id: int) -> Patient:
    """The resident's own record (relation self), which the bot books for."""
    patient = db.session.scalar(
        select(Patient).where(Patient.resident_id == resident_id, Patient.relation == "self",
                              Patient.removed_at.is_(None)).order_by(Patient.id).limit(1)
    )
    if patient is None:
        raise NoPatient("register your name and ID number before booking")
    return patient


def add_patient(*, resident_id: int, name: str, id_number: str, relation: str = "self",
                phone: str | None = None, now: datetime | None = None) -> Patient:
    """Register a patient; re-adding a removed one brings back its record (and its no-show history)."""
    if db.session.get(Resident, resident_id) is None:
        raise NotFound("no such resident")
    number = _checked(id_number)
    _refuse_second_self(resident_id=resident_id, relation=relation)
    _refuse_family_beyond_cap(resident_id=resident_id, relation=relation)
    existing = db.session.scalar(
        select(Patient).where(Patient.resident_id == resident_id, Patient.id_number_hash == keyed_hash(number))
    )
    if existing is not None and existing.removed_at is None:
        raise Conflict("this person is already registered", code="patient_exists")
    patient = existing or Patient(resident_id=resident_id, created_at=now or utcnow())
    patient.name, patient.relation, patient.phone, patient.removed_at = name.strip(), relation, phone, None
    _store_id_number(patient, number)
    db.session.add(patient)
    try:
        db.session.commit()
    except IntegrityError:  # the same person added by a concurrent request
        db.session.rollback()
        raise Conflict("this person is already registered", code="patient_exists") from None
    return patient


def update_patient(*, resident_id: int, patient_id: int, name: str | None = None, relation: str | None = None,
                   phone: str | None = None, id_number: str | None = None) -> Patient:
    patient = get_patient(resident_id=resident_id, patient_id=patient_id)
    if relation is not None and relation != patient.relation:
        _refuse_second_self(resident_id=resident_id, relation=relation)
        if patient.relation == "self":
            # Otherwise self -> parent, then a new self, repeated, adds family members past the cap.
            _lock_patient_row(patient.id)  # patient before resident: the order book_slot takes them in
            _refuse_family_beyond_cap(resident_id=resident_id, relation=relation)
        patient.relation = relation
    if name is not None:
        patient.name = name.strip()
    if phone is not None:
        patient.phone = phone or None
    if id_number is not None:
        _store_id_number(patient, _checked(id_number))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("another registered person has this ID number", code="patient_exists") from None
    return patient


def remove_patient(*, resident_id: int, patient_id: int, now: datetime | None = None) -> None:
    """Remove a family member; refused while they hold a booking, so nobody is left with an orphan visit."""
    patient = get_patient(resident_id=resident_id, patient_id=patient_id)
    has_booking = db.session.scalar(select(exists().where(
        Appointment.patient_id == patient.id, Appointment.status == "booked")))
    if has_booking:
        raise Conflict("cancel this person's appointments first", code="patient_has_appointments")
    patient.removed_at = now or utcnow()
    db.session.commit()


def _checked(raw: str) -> str:
    if not raw or not residents.is_valid(raw):
        raise InvalidIdNumber("the ID number is not valid")
    return residents.normalise(raw)


def _store_id_number(patient: Patient, number: str) -> None:
    patient.id_number_encrypted = encrypt(number)
    patient.id_number_hash = keyed_hash(number)
    patient.id_number_last4 = number[-4:]


def lock_resident(*, resident_id: int) -> None:
    """Serialise the changes counted per resident (family members, bookings across them).

    FOR NO KEY UPDATE: two of these wait for each other, while rows that merely reference the resident
    (messages, tickets, appointments) are still inserted freely, their foreign-key check taking KEY SHARE.
    """
    db.session.execute(select(Resident.id).where(Resident.id == resident_id).with_for_update(key_share=True))


def _refuse_family_beyond_cap(*, resident_id: int, relation: str) -> None:
    """At most BOOKING_MAX_FAMILY_MEMBERS current family members, the resident themself not counted."""
    if relation == "self":
        return
    lock_resident(resident_id=resident_id)  # held to the commit, so two additions cannot both see room
    cap = setting("BOOKING_MAX_FAMILY_MEMBERS")
    members = db.session.scalar(select(func.count()).select_from(Patient).where(
        Patient.resident_id == resident_id, Patient.relation != "self", Patient.removed_at.is_(None)))
    if members >= cap:
        raise TooManyFamilyMembers(f"每位居民最多登记{cap}位家人，请先移除不再需要代约的家人")


def _lock_patient_row(patient_id: int) -> None:
    db.session.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


def _refuse_second_self(*, resident_id: int, relation: str) -> None:
    if relation != "self":
        return
    already = db.session.scalar(select(exists().where(
        Patient.resident_id == resident_id, Patient.relation == "self", Patient.removed_at.is_(None))))
    if already:
        raise Conflict("the resident's own record exists already", code="self_exists")
