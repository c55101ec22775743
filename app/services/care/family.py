"""Notices to a resident's family contacts: a WeChat subscribe message (`care_notice`) when they follow the account
and granted it, a 客服 message inside the 48-hour window, else SMS (outbox.notify_contact); never raises."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core.config import setting
from app.core.extensions import db
from app.models import HelpContact, Resident
from app.models.base import utcnow
from app.services import outbox


def tell_contacts(*, resident: Resident, body: str, event: str, dedup_key: str,
                  now: datetime | None = None) -> dict[int, str]:
    """Tell each family contact (not the staff group: staff have the ticket) once per `dedup_key`: {contact: route}."""
    contacts = db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident.id, HelpContact.position > 0,
                                  HelpContact.relation != "staff")
        .order_by(HelpContact.position)
    ).all()
    when = (now or utcnow()).astimezone(ZoneInfo(setting("TIMEZONE"))).strftime("%Y年%m月%d日 %H:%M")
    fields = {"resident": resident.name, "event": event, "time": when}
    return {contact.id: outbox.notify_contact(openid=contact.wechat_openid, phone=contact.phone,
                                              template="care_notice", fields=fields, body=body,
                                              dedup_key=f"{dedup_key}:{contact.id}")
            for contact in contacts}
