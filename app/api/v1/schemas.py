"""Request and response bodies of the mobile API, declared once here so /openapi.json documents them.

Booking shapes are the booking API's own (app/api/schemas/booking.py): ID numbers leave masked by
construction. Times are ISO 8601 in Asia/Shanghai.
"""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, File, Float, Function, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import url_for

from app.api.schemas.booking import AppointmentOut, AppointmentsQuery, LocalDateTime
from app.api.schemas.fields import Trimmed
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.models.help import CONTACT_RELATIONS
from app.models.mobile import REQUEST_CATEGORIES
from app.models.residents import CHANNELS
from app.services.help import MAX_CHAIN
from app.services.help import STATUS_LABELS as ALERT_LABELS
from app.services.tickets import MAX_PHOTOS, RATABLE
from app.services.tickets import REQUEST_CATEGORY_LABELS as CATEGORY_LABELS
from app.services.tickets import STATUS_LABELS as TICKET_LABELS

_PAGE = {"description": "the next page's cursor; null on the last page"}


def mask_phone(phone: str | None) -> str | None:
    """+8613812345678 -> +86138****5678: enough to recognise, too little to call."""
    if not phone:
        return None
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"


class IdempotencyHeaders(Schema):
    idempotency_key = String(data_key="Idempotency-Key", validate=Length(1, 255), metadata={
        "description": "any unique string (a UUID); a retry with the same key and body replays the first answer"})


class PageQuery(Schema):
    cursor = String(validate=Length(max=500), metadata={"description": "next_cursor of the previous page"})
    limit = Integer(load_default=DEFAULT_LIMIT, validate=Range(1, MAX_LIMIT))


# --- auth ------------------------------------------------------------------------------------------

class CodeIn(Schema):
    phone = String(required=True, validate=Length(1, 20), metadata={"example": "13800000000"})


class CodeSentOut(Schema):
    phone = String(metadata={"description": "the number, masked"})
    expires_in = Integer(metadata={"description": "seconds the code stays valid"})


class SignInIn(Schema):
    phone = String(required=True, validate=Length(1, 20))
    code = String(required=True, validate=Length(1, 10))
    device = String(load_default="", validate=Length(max=100))


class TokensOut(Schema):
    access_token = String()
    token_type = String(dump_default="Bearer")
    expires_in = Integer()
    refresh_token = String(metadata={"description": "single use: every refresh returns a new one"})
    resident_id = Integer()


class RefreshIn(Schema):
    refresh_token = String(required=True, validate=Length(1, 200))


class WeChatUrlQuery(Schema):
    redirect_uri = String(required=True, validate=Length(1, 500))
    scope = String(load_default="snsapi_base", validate=OneOf(("snsapi_base", "snsapi_userinfo")))


class WeChatUrlOut(Schema):
    url = String()
    state = String(metadata={"description": "hand it back with the code"})


class WeChatCodeIn(Schema):
    code = String(required=True, validate=Length(1, 200))
    state = String(required=True, validate=Length(1, 500))
    device = String(load_default="", validate=Length(max=100))


class SignedOutOut(Schema):
    sessions_ended = Integer()


# --- me --------------------------------------------------------------------------------------------

class ChannelOut(Schema):
    channel = String()
    linked = Boolean()
    address = String(allow_none=True, metadata={"description": "the phone, masked; WeChat ids are not shown"})


class MeOut(Schema):
    id = Integer()
    name = String()
    phone = String(allow_none=True)
    address = String()
    community = String(attribute="community.name", allow_none=True)
    is_elderly = Boolean()
    preferred_channel = String(metadata={"description": "the channel notices try first"})
    channels = List(Nested(ChannelOut))


class MePatch(Schema):
    name = Trimmed(validate=Length(1, 100))
    address = String(validate=Length(max=200))
    preferred_channel = String(validate=OneOf(CHANNELS))


class PhoneLinkIn(Schema):
    phone = String(required=True, validate=Length(1, 20))


class PhoneConfirmIn(Schema):
    code = String(required=True, validate=Length(1, 10))
    merge = Boolean(load_default=False)  # consent to merging the account that already holds the phone


# --- appointments ----------------------------------------------------------------------------------

class AppointmentsPageQuery(AppointmentsQuery, PageQuery):
    pass


class AppointmentsPage(Schema):
    appointments = List(Nested(AppointmentOut))
    next_cursor = String(allow_none=True, metadata=_PAGE)


# --- help ------------------------------------------------------------------------------------------

class ManagedOut(Schema):
    id = Integer()
    name = String()
    is_self = Boolean()


class ManagedListOut(Schema):
    residents = List(Nested(ManagedOut))


class ContactIn(Schema):
    id = Integer(metadata={"description": "an existing contact's id keeps its history"})
    name = Trimmed(required=True, validate=Length(1, 50))
    phone = String(validate=Length(max=20), allow_none=True)
    wechat_openid = String(validate=Length(max=64), allow_none=True)
    relation = String(required=True, validate=OneOf(CONTACT_RELATIONS))
    channels = List(String(validate=OneOf(("voice", "sms", "wechat"))), load_default=["voice", "sms"])
    ring_seconds = Integer(load_default=30)
    wait_seconds = Integer(load_default=60)


class ContactOut(Schema):
    id = Integer()
    position = Integer()
    name = String()
    phone = String(allow_none=True)
    relation = String()
    channels = Function(lambda c: [x for x in c.channels.split(",") if x])
    ring_seconds = Integer()
    wait_seconds = Integer()


class ChainIn(Schema):
    contacts = List(Nested(ContactIn), required=True, validate=Length(1, MAX_CHAIN))


class ChainOut(Schema):
    contacts = List(Nested(ContactOut))


class AlertOut(Schema):
    id = Integer()
    status = String()
    status_label = Function(lambda a: ALERT_LABELS.get(a["status"], a["status"]))
    source = String()
    created_at = LocalDateTime()
    accepted_at = LocalDateTime(allow_none=True)
    accepted_by = String(allow_none=True)
    resolved_at = LocalDateTime(allow_none=True)
    outcome = String(allow_none=True)


class AlertsPage(Schema):
    alerts = List(Nested(AlertOut))
    next_cursor = String(allow_none=True, metadata=_PAGE)


class DelegateIn(Schema):
    phone = String(required=True, validate=Length(1, 20))
    name = String(load_default="", validate=Length(max=50))


class DelegateOut(Schema):
    id = Integer()
    name = String()
    phone = Function(lambda d: mask_phone(d.phone))
    created_at = LocalDateTime()


class DelegateEnvelope(Schema):
    delegate = Nested(DelegateOut)


class DelegatesOut(Schema):
    delegates = List(Nested(DelegateOut))


# --- requests (诉求 / 随手拍) ------------------------------------------------------------------------

class PhotoUploadIn(Schema):
    file = File(required=True, metadata={"description": "JPEG, PNG or WebP; the type is read from the content"})


class PhotoOut(Schema):
    id = Integer()
    content_type = String()
    width = Integer()
    height = Integer()
    size_bytes = Integer()
    url = Function(lambda p: url_for("mobile_v1.photo", photo_id=p.id))


class PhotoEnvelope(Schema):
    photo = Nested(PhotoOut)


class RequestIn(Schema):
    category = String(required=True, validate=OneOf(REQUEST_CATEGORIES))
    text = Trimmed(required=True, validate=Length(1, 1000))
    photo_ids = List(Integer(validate=Range(min=1)), load_default=[], validate=Length(max=MAX_PHOTOS))
    latitude = Float(validate=Range(-90, 90), metadata={"description": "GCJ-02"})
    longitude = Float(validate=Range(-180, 180))
    pole_number = String(validate=Length(1, 20), metadata={"description": "the 一号定位 plate, e.g. GY0123-045"})


class ReplyOut(Schema):
    body = String()
    at = LocalDateTime(attribute="created_at")


class RequestOut(Schema):
    id = Integer()
    category = String()
    category_label = Function(lambda r: CATEGORY_LABELS[r.category])
    text = String()
    status = String(attribute="ticket.status")
    status_label = Function(lambda r: TICKET_LABELS.get(r.ticket.status, r.ticket.status))
    latitude = Float(allow_none=True)  # a JSON number (Flask would write a Decimal as a string)
    longitude = Float(allow_none=True)
    pole_number = String(allow_none=True)
    photos = List(Nested(PhotoOut))
    rating = Integer(attribute="ticket.csat_score", allow_none=True)
    rating_comment = String(allow_none=True)
    can_rate = Function(lambda r: r.ticket.status in RATABLE and r.ticket.csat_score is None)
    created_at = LocalDateTime()


class RequestEnvelope(Schema):
    request = Nested(RequestOut)
    replies = List(Nested(ReplyOut), metadata={"description": "staff replies, oldest first"})


class RequestsPage(Schema):
    requests = List(Nested(RequestOut))
    next_cursor = String(allow_none=True, metadata=_PAGE)


class RatingIn(Schema):
    score = Integer(required=True, validate=Range(1, 5))
    comment = String(validate=Length(max=500))


# --- notifications ---------------------------------------------------------------------------------

class NotificationOut(Schema):
    id = Integer()
    channel = String()
    kind = String()
    body = String()
    status = String()
    created_at = LocalDateTime()
    sent_at = LocalDateTime(allow_none=True)


class NotificationsPage(Schema):
    notifications = List(Nested(NotificationOut))
    next_cursor = String(allow_none=True, metadata=_PAGE)
