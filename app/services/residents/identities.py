"""One resident across channels: finding them by openid or phone, and linking a phone by an SMS code."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.core import transports
from app.core.config import setting
from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, Community, PhoneLinkCode, Resident, Street
from app.models.base import utcnow
from integrations.telephony import TextMessage, free_text

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=5)
CODE_TRIES = 5
VERIFY_TEMPLATE = "verify_code"  # Aliyun's verification-code (验证码) template, one ${code}: sign-in and phone linking
PHONE_HAS_ACCOUNT = ("该手机号已有一个账户（可能含预约、家人和紧急联系人）。如确认是您本人、要把两个账户合并，"
                     "请回复“合并 验证码”，例如“合并 123456”。")
MERGE_NOTICE = "【邻里】手机号{masked}的账户已与一个微信账号合并。如非本人操作，请立即联系社区工作人员。"
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def normalise_phone(raw: str) -> str | None:
    """E.164 for a mainland mobile (138..., 86138..., +86 138...) or an already international number."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+"):
        return digits if re.fullmatch(r"\+\d{8,15}", digits) else None
    if digits.startswith("86") and _MAINLAND_MOBILE.match(digits[2:]):
        return "+" + digits
    if _MAINLAND_MOBILE.match(digits):
        return "+86" + digits
    return None


def code_phone(raw: str) -> str:
    """The E.164 of a phone that may be texted a code (sign-in or linking), or ValidationFailed.

    Only mobiles of SMS_CODE_COUNTRY_CODES (the mainland by default): a street office serves its residents, and
    codes texted abroad on an attacker's say-so cost money and feed SMS pumping fraud.
    """
    e164 = normalise_phone(raw or "")
    allowed = tuple("+" + cc.strip() for cc in setting("SMS_CODE_COUNTRY_CODES").split(",") if cc.strip())
    if e164 is None or not e164.startswith(allowed):
        raise ValidationFailed("手机号格式不正确，请输入中国大陆手机号", code="bad_phone")
    return e164


def resident_for(*, channel: str, address: str) -> Resident:
    """The resident behind an openid or a phone number, created on their first message."""
    resident = db.session.scalar(
        select(Resident).join(ChannelIdentity)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == address)
    )
    if resident is not None:
        return resident
    if channel == "sms":
        # A number staff registered (or a WeChat user linked) is that person texting: the network proved it.
        resident = db.session.scalar(select(Resident).where(Resident.phone == address).order_by(Resident.id).limit(1))
    if resident is None:
        resident = Resident(phone=address if channel == "sms" else None,
                            preferred_channel=channel)
        db.session.add(resident)
        db.session.flush()
    db.session.add(ChannelIdentity(resident_id=resident.id, channel=channel, external_id=address))
    try:
        db.session.commit()
    except IntegrityError:  # the same resident's concurrent first message created it a moment ago
        db.session.rollback()
        return _identity(channel, address).resident
    return resident


def _identity(channel: str, address: str) -> ChannelIdentity | None:
    return db.session.scalar(
        select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == address)
    )


def street_of(resident: Resident) -> int | None:
    """The street whose staff answer this resident (the first street served before they register)."""
    if resident.community_id is not None:
        return db.session.get(Community, resident.community_id).street_id
    return db.session.scalar(select(Street.id).order_by(Street.id).limit(1))


def residents_of_street(*, street_id: int):
    """The ids of the residents whose street is `street_id`, as a select: street_of's rule for many at once."""
    in_street = select(Resident.id).join(Community, Community.id == Resident.community_id) \
        .where(Community.street_id == street_id)
    if db.session.scalar(select(Street.id).order_by(Street.id).limit(1)) == street_id:
        return in_street.union(select(Resident.id).where(Resident.community_id.is_(None)))
    return in_street


def set_wechat_subscribed(*, resident_id: int, subscribed: bool) -> None:
    db.session.execute(update(Resident).where(Resident.id == resident_id).values(wechat_subscribed=subscribed))
    db.session.commit()


def ensure_sms_identity(*, resident: Resident) -> bool:
    """Give a resident with a phone number an SMS identity (for a fallback text); False if someone else holds it."""
    if not resident.phone:
        return False
    identity = _identity("sms", resident.phone)
    if identity is not None:
        return identity.resident_id == resident.id
    db.session.add(ChannelIdentity(resident_id=resident.id, channel="sms", external_id=resident.phone))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        identity = _identity("sms", resident.phone)
        return identity is not None and identity.resident_id == resident.id
    return True


# --- phone linking ---------------------------------------------------------------------------------

def _code_hash(code: str, phone: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def request_phone_link(*, resident_id: int, phone: str) -> str:
    """Text a one-time code to `phone` (an E.164 that code_phone accepted); the resident proves the number by sending
    it back. Unlimited: callers go through residents.request_phone_link, which applies the limits."""
    e164 = phone
    code = f"{secrets.randbelow(10**6):06d}"
    now = utcnow()
    # Earlier unused codes stop working: only the latest one text counts.
    db.session.execute(update(PhoneLinkCode).where(PhoneLinkCode.resident_id == resident_id,
                                                   PhoneLinkCode.used_at.is_(None)).values(used_at=now))
    db.session.add(PhoneLinkCode(resident_id=resident_id, phone=e164, code_hash=_code_hash(code, e164),
                                 expires_at=now + CODE_TTL))
    db.session.commit()
    # Straight to the number, not through the outbox: it is not yet anyone's SMS conversation.
    send_code_sms(e164, code, f"【邻里】您的绑定验证码是{code}，5分钟内有效。如非本人操作请忽略。")
    return e164


def send_code_sms(phone: str, code: str, body: str) -> None:
    """A one-time code by the provider that reaches the number: `body` by Twilio, or Aliyun's approved
    verification-code template "verify_code" with ${code} (docs/channels.md, "SMS through Aliyun")."""
    transports.telephony_for(phone).send_text(TextMessage(to=phone, body=body, template=VERIFY_TEMPLATE,
                                                          params={"code": code}))


def pending_link(*, resident_id: int) -> PhoneLinkCode | None:
    return db.session.scalar(
        select(PhoneLinkCode).where(PhoneLinkCode.resident_id == resident_id, PhoneLinkCode.used_at.is_(None),
                                    PhoneLinkCode.expires_at > utcnow(), PhoneLinkCode.attempts < CODE_TRIES)
        .order_by(PhoneLinkCode.id.desc()).limit(1)
    )


def confirm_phone_link(*, resident_id: int, code: str, merge: bool = False) -> Resident:
    """Check the code; on success the phone (and whoever wrote from it by SMS) becomes this resident's.

    A phone that already belongs to another resident is merged only with `merge` (the resident said so after being
    told), and the phone is texted that it was: a right code is proof of the phone, but never a silent takeover.
    Unlimited: callers go through residents.confirm_phone_link, which budgets the guesses.
    """
    link = pending_link(resident_id=resident_id)
    if link is None:
        raise ValidationFailed("没有待验证的绑定，或验证码已过期", code="no_pending_link")
    # Counted before comparing, in its own statement, so parallel guesses cannot share one try; guarded, so a burst
    # of guesses read before any was counted still gets CODE_TRIES judged, not one per guess.
    spent = db.session.execute(update(PhoneLinkCode).where(PhoneLinkCode.id == link.id,
                                                           PhoneLinkCode.attempts < CODE_TRIES,
                                                           PhoneLinkCode.used_at.is_(None))
                               .values(attempts=PhoneLinkCode.attempts + 1)).rowcount
    db.session.commit()
    if not spent:
        raise ValidationFailed("没有待验证的绑定，或验证码已过期", code="no_pending_link")
    if not hmac.compare_digest(link.code_hash, _code_hash(code.strip(), link.phone)):
        raise ValidationFailed("验证码不正确", code="wrong_code")
    holder = _identity("sms", link.phone)
    merging = holder is not None and holder.resident_id != resident_id
    if merging and not merge:
        # The code stays valid (its try is spent), so the resident can confirm with it.
        raise Conflict(PHONE_HAS_ACCOUNT, code="phone_has_account")
    won = db.session.execute(update(PhoneLinkCode).where(PhoneLinkCode.id == link.id, PhoneLinkCode.used_at.is_(None))
                             .values(used_at=utcnow())).rowcount
    if not won:
        db.session.rollback()
        raise ValidationFailed("验证码已使用", code="no_pending_link")
    resident = db.session.get(Resident, resident_id)
    resident.phone = link.phone
    resident.sms_opted_out = False
    if merging:
        merge_residents(into=resident, absorbed_id=holder.resident_id)
    elif holder is None:
        db.session.add(ChannelIdentity(resident_id=resident_id, channel="sms", external_id=link.phone))
    db.session.commit()
    if merging:
        _tell_phone_of_merge(link.phone)
    return resident


def _tell_phone_of_merge(phone: str) -> None:
    """The phone's owner hears of the merge, so one that was not theirs is noticed and reported."""
    try:
        notice = MERGE_NOTICE.format(masked=phone[:-8] + "****" + phone[-4:])
        transports.telephony_for(phone).send_text(free_text(phone, notice))
    except Exception as exc:  # noqa: BLE001 (the merge stands; the notice is a courtesy that failed)
        log.warning("merge notice to a linked phone failed: %s", type(exc).__name__)


def merge_residents(*, into: Resident, absorbed_id: int) -> None:
    """Move every row of the absorbed resident (identities, conversations, tickets, appointments, help
    contacts...) to `into`, found through the foreign keys so a new table is never forgotten."""
    residents = db.metadata.tables["residents"]
    nested = db.session.begin_nested()
    try:
        for table in db.metadata.sorted_tables:
            for fk in table.foreign_keys:
                if fk.column.table is residents and fk.column.name == "id":
                    col = fk.parent
                    db.session.execute(table.update().where(col == absorbed_id).values({col.name: into.id}))
        db.session.execute(residents.delete().where(residents.c.id == absorbed_id))
        nested.commit()
    except IntegrityError as exc:
        # Both residents hold the same kind of one-per-resident row (e.g. help contact #1): staff decide.
        nested.rollback()
        db.session.rollback()  # nothing of the link is kept; it can be retried once staff fixed the data
        log.warning("resident merge %s -> %s refused: %s", absorbed_id, into.id, exc.orig)
        raise Conflict("两个账号的资料有冲突，请联系工作人员合并", code="merge_conflict") from exc
