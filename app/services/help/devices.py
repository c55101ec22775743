"""Help buttons (registration, signed presses) and each elderly resident's contact chain."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from app.core.extensions import db
from app.core.secrets_at_rest import decrypt, encrypt
from app.models import EscalationStep, HelpAlert, HelpContact, HelpDevice, Resident
from app.models.base import utcnow
from app.models.help import ATTEMPT_CHANNELS, CONTACT_RELATIONS
from app.services.help.alerts import raise_alert

SIGNATURE_WINDOW = timedelta(minutes=5)
MAX_CHAIN = 10
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Compared against when the device id is unknown, so an unknown id costs the same time as a bad signature.
_DUMMY_SECRET = secrets.token_hex(32)


def canonical_string(device_uid: str, press_id: str, timestamp: int) -> str:
    """What a device signs: its id, the press id and the Unix time, one per line (no ambiguity by joining)."""
    return f"{device_uid}\n{press_id}\n{timestamp}"


def sign(secret: str, device_uid: str, press_id: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), canonical_string(device_uid, press_id, timestamp).encode(),
                    hashlib.sha256).hexdigest()


def press_button(*, device_uid: str, press_id: str, timestamp: int, signature: str,
                 now: datetime | None = None) -> HelpAlert:
    """A signed press from a device: checked, then raised (a retried press id returns the same alert)."""
    now = now or utcnow()
    device = authenticate_device(device_uid=device_uid, message=canonical_string(device_uid, press_id, timestamp),
                                 signature=signature, timestamp=timestamp, now=now)
    return raise_alert(resident_id=device.resident_id, source="device", device_id=device.id, press_id=press_id,
                       now=now)


def authenticate_device(*, device_uid: str, message: str, signature: str, timestamp: int,
                        now: datetime) -> HelpDevice:
    """The active device whose secret signed `message` (HMAC-SHA256, hex) at `timestamp`, within the window.

    Every signed device request (presses, heartbeats, check-ins) goes through here: one scheme, one window.
    """
    device = db.session.scalar(select(HelpDevice).where(HelpDevice.device_uid == device_uid))
    secret = decrypt(device.secret_encrypted) if device is not None and device.active else _DUMMY_SECRET
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), (signature or "").strip().lower().encode()) \
            or device is None or not device.active:
        raise Unauthorized("the device signature does not match", code="invalid_signature")
    # Checked after the signature: only a genuine but old request is a replay.
    if abs(now.timestamp() - timestamp) > SIGNATURE_WINDOW.total_seconds():
        raise Forbidden("the request's timestamp is too far from now", code="stale_request")
    return device


def register_device(*, device_uid: str, resident_id: int) -> tuple[HelpDevice, str]:
    """Register a button for a resident; the secret is returned once, to be written into the device."""
    if db.session.get(Resident, resident_id) is None:
        raise NotFound("no such resident", code="unknown_resident")
    secret = secrets.token_urlsafe(32)
    device = HelpDevice(device_uid=device_uid, resident_id=resident_id, secret_encrypted=encrypt(secret))
    db.session.add(device)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict("this device id is already registered", code="device_exists") from exc
    return device, secret


def contacts_of(*, resident_id: int) -> list[HelpContact]:
    if db.session.get(Resident, resident_id) is None:
        raise NotFound("no such resident", code="unknown_resident")
    return list(db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident_id, HelpContact.position > 0)
        .order_by(HelpContact.position)))


def replace_chain(*, resident_id: int, contacts: list[dict]) -> list[HelpContact]:
    """Set the resident's whole chain in order. Entries with an `id` keep their identity (history points at it).

    A contact left out is deleted, or, when past alerts refer to it, retired (position <= 0) so the
    alert timelines keep their names.
    """
    if db.session.get(Resident, resident_id) is None:
        raise NotFound("no such resident", code="unknown_resident")
    if not contacts or len(contacts) > MAX_CHAIN:
        raise ValidationFailed(f"a chain has 1 to {MAX_CHAIN} contacts", code="invalid_chain")
    for entry in contacts:
        _validate_contact(entry)
    existing = {c.id: c for c in db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident_id))}
    # Positions are unique per resident: park everyone first so reordering never collides midway.
    for contact in existing.values():
        contact.position = -contact.id
    db.session.flush()
    kept = []
    for position, entry in enumerate(contacts, start=1):
        contact = existing.pop(entry["id"], None) if entry.get("id") else None
        if entry.get("id") and contact is None:
            db.session.rollback()
            raise ValidationFailed(f"contact {entry['id']} is not in this resident's chain", code="unknown_contact")
        contact = contact or HelpContact(resident_id=resident_id)
        for key in ("name", "phone", "wechat_openid", "relation", "ring_seconds", "wait_seconds"):
            if key in entry:
                setattr(contact, key, entry[key])
        contact.channels = ",".join(entry["channels"])
        contact.position = position
        db.session.add(contact)
        kept.append(contact)
    for contact in existing.values():
        if not _referenced(contact.id):
            db.session.delete(contact)
    db.session.commit()
    return kept


def _referenced(contact_id: int) -> bool:
    return bool(db.session.scalar(select(EscalationStep.id).where(EscalationStep.contact_id == contact_id).limit(1))
                or db.session.scalar(select(HelpAlert.id).where(HelpAlert.accepted_contact_id == contact_id)
                                     .limit(1)))


def _validate_contact(entry: dict) -> None:
    channels = entry.get("channels") or ["voice", "sms"]
    entry["channels"] = channels
    problems = {}
    if not (entry.get("name") or "").strip():
        problems["name"] = "required"
    if entry.get("relation") not in CONTACT_RELATIONS:
        problems["relation"] = f"one of {', '.join(CONTACT_RELATIONS)}"
    if any(c not in ATTEMPT_CHANNELS for c in channels):
        problems["channels"] = f"subset of {', '.join(ATTEMPT_CHANNELS)}"
    if entry.get("phone") and not E164.match(entry["phone"]):
        problems["phone"] = "E.164, e.g. +8613800000000"
    if ({"voice", "sms"} & set(channels)) and not entry.get("phone"):
        problems["phone"] = "needed for voice or sms"
    if "wechat" in channels and not entry.get("wechat_openid"):
        problems["wechat_openid"] = "needed for wechat"
    if not 5 <= int(entry.get("ring_seconds", 30)) <= 120:
        problems["ring_seconds"] = "5 to 120"
    if not 10 <= int(entry.get("wait_seconds", 60)) <= 600:
        problems["wait_seconds"] = "10 to 600"
    if problems:
        raise ValidationFailed("invalid contact", code="invalid_contact", details=problems)
