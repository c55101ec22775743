"""A resident's contact chain: who is called in which order, on which channels (escalation and notices read it)."""
from __future__ import annotations

from sqlalchemy import select

from app.core.extensions import db
from app.models import HelpContact

CHANNEL_ORDER = ("voice", "sms", "wechat")


def channels_of(contact: HelpContact) -> list[str]:
    """The channels this contact can actually be reached on, in the order they are tried."""
    wanted = {c.strip() for c in (contact.channels or "").split(",")}
    reachable = {"voice": bool(contact.phone), "sms": bool(contact.phone), "wechat": bool(contact.wechat_openid)}
    return [c for c in CHANNEL_ORDER if c in wanted and reachable[c]]


def chain_of(*, resident_id: int) -> list[HelpContact]:
    """The resident's chain in order; retired contacts (position <= 0) and unreachable ones are skipped."""
    contacts = db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident_id, HelpContact.position > 0)
        .order_by(HelpContact.position)
    ).all()
    return [c for c in contacts if channels_of(c)]
