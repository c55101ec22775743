"""Help chains from the app: who may edit an elderly resident's contacts and see their alerts.

The resident themself, and the family members they authorised by phone number. A family member is
recognised by a phone they proved (an SMS sign-in or message), never by a number anyone can type in.
Everyone else is told the resident does not exist, so ids cannot be probed.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, HelpAlert, HelpContact, HelpDelegate, Resident
from app.services import residents
from app.services.help import devices as help_devices
from app.services.help.notices import winner_name

MAX_DELEGATES = 5


def manageable(*, actor_id: int) -> list[Resident]:
    """The residents whose help the actor manages: themself first, then those who authorised them."""
    owners = select(HelpDelegate.resident_id).where(HelpDelegate.phone.in_(_proven_phones(actor_id)))
    others = db.session.scalars(select(Resident).where(Resident.id.in_(owners), Resident.id != actor_id)
                                .order_by(Resident.id)).all()
    return [db.session.get(Resident, actor_id), *others]


def require_manager(*, actor_id: int, resident_id: int) -> Resident:
    if resident_id != actor_id:
        granted = db.session.scalar(select(HelpDelegate.id).where(
            HelpDelegate.resident_id == resident_id, HelpDelegate.phone.in_(_proven_phones(actor_id))).limit(1))
        if granted is None:
            raise NotFound("no such resident")
    return db.session.get(Resident, resident_id)


def contacts(*, actor_id: int, resident_id: int) -> list[HelpContact]:
    require_manager(actor_id=actor_id, resident_id=resident_id)
    return help_devices.contacts_of(resident_id=resident_id)


def replace_contacts(*, actor_id: int, resident_id: int, contacts: list[dict]) -> list[HelpContact]:
    require_manager(actor_id=actor_id, resident_id=resident_id)
    return help_devices.replace_chain(resident_id=resident_id, contacts=contacts)


def alerts_of(*, actor_id: int, resident_id: int):
    """The resident's alerts as a select, for the caller's pagination."""
    require_manager(actor_id=actor_id, resident_id=resident_id)
    return select(HelpAlert).where(HelpAlert.resident_id == resident_id)


def accepted_by(alert: HelpAlert) -> str | None:
    return winner_name(alert) if alert.accepted_at is not None else None


def delegates(*, resident_id: int) -> list[HelpDelegate]:
    return list(db.session.scalars(select(HelpDelegate).where(HelpDelegate.resident_id == resident_id)
                                   .order_by(HelpDelegate.id)))


def add_delegate(*, resident_id: int, phone: str, name: str = "") -> HelpDelegate:
    """Authorise a family member's phone; only the resident themself can, never another delegate."""
    e164 = residents.normalise_phone(phone)
    if e164 is None:
        raise ValidationFailed("手机号格式不正确", code="bad_phone")
    if e164 in db.session.scalars(_proven_phones(resident_id)).all():
        raise ValidationFailed("this is the resident's own phone", code="own_phone")
    if len(delegates(resident_id=resident_id)) >= MAX_DELEGATES:
        raise ValidationFailed(f"at most {MAX_DELEGATES} family members", code="too_many_delegates")
    delegate = HelpDelegate(resident_id=resident_id, phone=e164, name=(name or "").strip()[:50])
    db.session.add(delegate)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("this phone is already authorised", code="delegate_exists") from None
    return delegate


def remove_delegate(*, resident_id: int, delegate_id: int) -> None:
    delegate = db.session.get(HelpDelegate, delegate_id)
    if delegate is None or delegate.resident_id != resident_id:
        raise NotFound("no such family member")
    db.session.delete(delegate)
    db.session.commit()


def _proven_phones(resident_id: int):
    return select(ChannelIdentity.external_id).where(ChannelIdentity.resident_id == resident_id,
                                                     ChannelIdentity.channel == "sms")
