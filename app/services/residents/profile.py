"""A resident's own profile in the app: details, linked channels, the channel notices try first,
and linking WeChat or a phone to the same resident."""
from __future__ import annotations

from sqlalchemy import select

from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, Conversation, OutboundMessage, Resident
from app.models.residents import CHANNELS
from app.services.residents import auth as resident_auth
from app.services.residents import identities


def get_profile(*, resident_id: int) -> Resident:
    return db.session.get(Resident, resident_id)


def linked_channels(*, resident_id: int) -> dict[str, str | None]:
    """channel -> its address (openid or E.164), None when not linked."""
    rows = db.session.execute(select(ChannelIdentity.channel, ChannelIdentity.external_id)
                              .where(ChannelIdentity.resident_id == resident_id)
                              .order_by(ChannelIdentity.id)).all()
    linked: dict[str, str | None] = dict.fromkeys(CHANNELS)
    for channel, address in rows:
        linked[channel] = linked[channel] or address
    return linked


def update_profile(*, resident_id: int, name: str | None = None, address: str | None = None,
                   preferred_channel: str | None = None) -> Resident:
    resident = db.session.get(Resident, resident_id)
    if preferred_channel is not None:
        if preferred_channel not in CHANNELS:
            raise ValidationFailed("unknown channel", code="invalid_channel")
        if linked_channels(resident_id=resident_id)[preferred_channel] is None:
            raise ValidationFailed("link this channel first", code="channel_not_linked")
        resident.preferred_channel = preferred_channel
    if name is not None:
        resident.name = name.strip()
    if address is not None:
        resident.address = address.strip()
    db.session.commit()
    return resident


def link_wechat(*, resident_id: int, code: str, state: str, client_key: str | None) -> Resident:
    """Link the WeChat user who just authorised the H5 page; their chat history comes along (merge)."""
    openid = resident_auth.wechat_openid(code=code, state=state, client_key=client_key)
    own = linked_channels(resident_id=resident_id)["wechat"]
    if own == openid:
        return get_profile(resident_id=resident_id)
    if own is not None:
        raise Conflict("another WeChat account is linked already", code="wechat_already_linked")
    holder = db.session.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == "wechat",
                                                             ChannelIdentity.external_id == openid))
    resident = db.session.get(Resident, resident_id)
    if holder is None:
        db.session.add(ChannelIdentity(resident_id=resident_id, channel="wechat", external_id=openid))
    else:
        # The openid and this phone are both proven to be the same person now: one resident remains.
        # (identities' merge is the one place that knows how to move every row; it is reused, not copied.)
        if linked_channels(resident_id=holder.resident_id)["sms"] is not None:
            raise Conflict("this WeChat account belongs to another phone's account", code="wechat_linked_elsewhere")
        identities.merge_residents(into=resident, absorbed_id=holder.resident_id)
    db.session.commit()
    return resident


def request_phone_link(*, resident_id: int, phone: str, client: str) -> str:
    """Text a code to prove a phone: the one path of every channel (the app, the WeChat chat), with one set of limits.

    `client` is whoever asks: the address in the app, "wechat:<openid>" in the chat. Codes are limited per phone
    (resend interval, hourly budget), whoever asks, and per client.
    """
    e164 = identities.code_phone(phone)
    resident_auth.limit_code_sends(phone=e164, client_ip=client)
    return identities.request_phone_link(resident_id=resident_id, phone=e164)


def confirm_phone_link(*, resident_id: int, code: str, client: str, merge: bool = False) -> Resident:
    """Check the texted code; `merge` consents to absorbing the account that already holds the phone."""
    link = identities.pending_link(resident_id=resident_id)
    if link is None:
        raise ValidationFailed("没有待验证的绑定，或验证码已过期", code="no_pending_link")
    # Guesses are budgeted per phone, whoever makes them: fresh WeChat accounts buy no extra tries at one number.
    # Kept apart from the phone's sign-in budget, so guesses at linking never lock its owner out of signing in.
    resident_auth.limit_code_tries(phone=f"link:{link.phone}", client_ip=client)
    return identities.confirm_phone_link(resident_id=resident_id, code=code, merge=merge)


def notifications_of(*, resident_id: int):
    """Every outbox row of the resident's conversations, as a select for the caller's pagination."""
    return (select(OutboundMessage).join(Conversation, Conversation.id == OutboundMessage.conversation_id)
            .where(Conversation.resident_id == resident_id))
