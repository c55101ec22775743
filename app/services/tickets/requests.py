"""Residents' requests (诉求 / 随手拍): a reported problem becomes a ticket for the street's staff; the
resident follows its status and the staff's replies, and rates it once it is resolved."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from decimal import Decimal

from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, update

from app.core import photo_storage
from app.core.config import setting
from app.core.errors import Conflict, DomainError, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import RequestPhoto, Resident, ResidentRequest, Staff, Ticket, TicketEvent
from app.models.base import utcnow
from app.services import residents
from app.services.tickets import lifecycle as tickets

log = logging.getLogger(__name__)

MAX_PHOTOS = 3
CATEGORY_LABELS = {"sanitation": "环境卫生", "facilities": "公共设施", "greenery": "园林绿化", "safety": "安全隐患",
                   "noise": "噪音扰民", "parking": "停车秩序", "other": "其他"}
RATABLE = ("resolved", "closed")
# The street's 一号定位 plates: letters and digits, e.g. "GY0123-045".
_POLE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,19}$")
_SWEEP_BATCH = 500


class UploadsRateLimited(DomainError):
    status = 429
    code = "rate_limited"


def upload_photo(*, resident_id: int, data: bytes, now: datetime | None = None) -> RequestPhoto:
    """Check, clean and store one photo; it waits, owned by the resident, until a request takes it (or the sweep
    deletes it, MOBILE_PHOTO_UNATTACHED_HOURS later). Limited per resident: uploads an hour, photos waiting, photos
    stored; the first two are checked before any decoding."""
    _count_upload(resident_id)
    _check_photo_quota(resident_id)
    clean = photo_storage.clean_photo(data)
    # Checked again holding the resident's row, so parallel uploads cannot pass the quota together.
    db.session.execute(select(Resident.id).where(Resident.id == resident_id).with_for_update(key_share=True))
    _check_photo_quota(resident_id)
    key = photo_storage.new_key(clean.extension)
    # Stored before the row exists: a crash leaves an unreferenced file, never a row without its file.
    photo_storage.storage().save(key, clean.data, clean.content_type)
    photo = RequestPhoto(resident_id=resident_id, storage_key=key, content_type=clean.content_type,
                         width=clean.width, height=clean.height, size_bytes=len(clean.data),
                         created_at=now or utcnow())
    db.session.add(photo)
    db.session.commit()
    return photo


def sweep_unattached_photos(*, now: datetime | None = None) -> int:
    """Delete the photos no request took within MOBILE_PHOTO_UNATTACHED_HOURS, rows and files; returns how many."""
    cutoff = (now or utcnow()) - timedelta(hours=setting("MOBILE_PHOTO_UNATTACHED_HOURS"))
    swept = 0
    while True:
        ids = list(db.session.scalars(select(RequestPhoto.id).where(RequestPhoto.request_id.is_(None),
                                                                    RequestPhoto.created_at < cutoff)
                                      .order_by(RequestPhoto.id).limit(_SWEEP_BATCH)))
        if not ids:
            return swept
        # Rows first, and only those still unattached: a request taking a photo meanwhile keeps it, and a failure
        # before the files are deleted leaves unreferenced files, never a row without its file.
        keys = list(db.session.scalars(delete(RequestPhoto).where(RequestPhoto.id.in_(ids),
                                                                  RequestPhoto.request_id.is_(None))
                                       .returning(RequestPhoto.storage_key)
                                       .execution_options(synchronize_session=False)))
        db.session.commit()
        storage = photo_storage.storage()
        for key in keys:
            try:
                storage.delete(key)
            except Exception as exc:  # noqa: BLE001 (any storage trouble: the file stays, unreferenced)
                log.warning("could not delete unattached photo %s: %s", key, exc)
        swept += len(keys)
        if len(ids) < _SWEEP_BATCH:
            return swept


def photo_content(*, resident_id: int, photo_id: int) -> tuple[RequestPhoto, bytes]:
    photo = db.session.get(RequestPhoto, photo_id)
    if photo is None or photo.resident_id != resident_id:
        raise NotFound("no such photo")
    return photo, photo_storage.storage().load(photo.storage_key)


def ticket_photos(*, ticket_id: int, staff: Staff) -> list[RequestPhoto]:
    """The photos of the request behind a ticket, for staff of the ticket's street (another street's: NotFound)."""
    tickets.get_ticket(ticket_id=ticket_id, staff=staff)
    return list(db.session.scalars(_photos_of_ticket(ticket_id).order_by(RequestPhoto.id)))


def ticket_photo_content(*, ticket_id: int, photo_id: int, staff: Staff) -> tuple[RequestPhoto, bytes]:
    """One of those photos and its bytes; a photo of another ticket, or of no request yet, is not found."""
    tickets.get_ticket(ticket_id=ticket_id, staff=staff)
    photo = db.session.scalar(_photos_of_ticket(ticket_id).where(RequestPhoto.id == photo_id))
    if photo is None:
        raise NotFound("照片不存在")
    return photo, photo_storage.storage().load(photo.storage_key)


def _photos_of_ticket(ticket_id: int):
    return (select(RequestPhoto).join(ResidentRequest, RequestPhoto.request_id == ResidentRequest.id)
            .where(ResidentRequest.ticket_id == ticket_id))


def report(*, resident_id: int, category: str, text: str, photo_ids: list[int] | None = None,
           latitude: float | None = None, longitude: float | None = None, pole_number: str | None = None,
           now: datetime | None = None) -> ResidentRequest:
    """File a request and open its ticket (source "resident") in the resident's street."""
    now = now or utcnow()
    photo_ids = sorted(set(photo_ids or []))
    pole = _checked_location(latitude, longitude, pole_number)
    if category not in CATEGORY_LABELS:
        raise ValidationFailed("unknown category", code="invalid_category")
    if len(photo_ids) > MAX_PHOTOS:
        raise ValidationFailed(f"at most {MAX_PHOTOS} photos", code="too_many_photos")
    _check_photos_free(resident_id, photo_ids)
    resident = db.session.get(Resident, resident_id)
    street_id = residents.street_of(resident)
    if street_id is None:
        raise ValidationFailed("no street serves this resident yet", code="no_street")
    text = text.strip()
    # The ticket commits first: if anything after it fails, staff still hold the report (an orphan
    # ticket is visible and actionable; a request nobody works on would not be).
    ticket = tickets.open_ticket(
        street_id=street_id, source="resident", category="report", resident_id=resident_id, now=now,
        subject=f"【随手拍·{CATEGORY_LABELS[category]}】{text[:60]}",
        body=_ticket_body(text, latitude, longitude, pole, len(photo_ids)),
    )
    request = ResidentRequest(resident_id=resident_id, ticket_id=ticket.id, category=category, text=text,
                              latitude=_coord(latitude), longitude=_coord(longitude), pole_number=pole,
                              created_at=now)
    db.session.add(request)
    db.session.flush()
    if photo_ids:
        taken = db.session.execute(
            update(RequestPhoto).where(RequestPhoto.id.in_(photo_ids), RequestPhoto.resident_id == resident_id,
                                       RequestPhoto.request_id.is_(None))
            .values(request_id=request.id).execution_options(synchronize_session=False)).rowcount
        if taken != len(photo_ids):  # another request took one of them in the meantime
            db.session.rollback()
            raise Conflict("a photo is already part of another request", code="photo_in_use")
    db.session.commit()
    db.session.refresh(request)
    return request


def requests_of(*, resident_id: int):
    """The resident's requests as a select, for the caller's pagination."""
    return select(ResidentRequest).where(ResidentRequest.resident_id == resident_id)


def get_request(*, resident_id: int, request_id: int) -> ResidentRequest:
    request = db.session.get(ResidentRequest, request_id)
    if request is None or request.resident_id != resident_id:
        raise NotFound("no such request")
    return request


def replies(*, request: ResidentRequest) -> list[TicketEvent]:
    """What staff sent the resident about this request (never their private notes)."""
    return list(db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == request.ticket_id,
                                                             TicketEvent.kind == "reply_out")
                                   .order_by(TicketEvent.id)))


def rate(*, resident_id: int, request_id: int, score: int, comment: str | None = None) -> ResidentRequest:
    """One 1-5 rating per request, once staff resolved it."""
    request = get_request(resident_id=resident_id, request_id=request_id)
    if not 1 <= score <= 5:
        raise ValidationFailed("a rating is 1 to 5", code="invalid_score")
    ticket = db.session.get(Ticket, request.ticket_id)
    if ticket.status not in RATABLE:
        raise InvalidTransition("the request can be rated once it is resolved", code="not_resolved")
    # Compare-and-set, so two taps (or a rating by chat at the same moment) score only once.
    won = db.session.execute(update(Ticket).where(Ticket.id == ticket.id, Ticket.csat_score.is_(None))
                             .values(csat_score=score).execution_options(synchronize_session=False)).rowcount
    if not won:
        db.session.rollback()
        raise Conflict("this request was already rated", code="already_rated")
    request.rating_comment = (comment or "").strip() or None
    tickets.add_event(ticket_id=ticket.id, kind="csat", body=f"居民评分：{score}" + (f"（{comment.strip()}）"
                      if request.rating_comment else ""), data={"score": score, "via": "app"}, commit=False)
    db.session.commit()
    db.session.refresh(ticket)
    return request


def _checked_location(latitude, longitude, pole_number) -> str | None:
    pole = (pole_number or "").strip().upper() or None
    if (latitude is None) != (longitude is None):
        raise ValidationFailed("give both latitude and longitude", code="invalid_location")
    if latitude is None and pole is None:
        raise ValidationFailed("give the place as coordinates or a pole number", code="location_required")
    if latitude is not None and not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValidationFailed("coordinates out of range", code="invalid_location")
    if pole is not None and not _POLE.match(pole):
        raise ValidationFailed("a pole number is 4-20 letters, digits or dashes", code="invalid_pole_number")
    return pole


def _count_upload(resident_id: int) -> None:
    """A fixed one-hour window per resident, counting attempts (a refused photo was decoded too)."""
    key = f"linli:mobile:photo-uploads:{resident_id}"
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.set(key, 0, ex=3600, nx=True)  # the window starts with the first upload and never extends
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    except RedisError as exc:
        # Open, unlike the sign-in limiter: the quotas below still bound what a resident stores, and each upload's
        # memory is bounded by the photo rules.
        log.warning("photo upload limiter unavailable: %s", exc)
        return
    per_hour = setting("MOBILE_PHOTOS_PER_HOUR")
    if count > per_hour:
        raise UploadsRateLimited(f"at most {per_hour} photo uploads an hour; try again later",
                                 details={"retry_after": max(int(ttl), 1), "limit": per_hour})


def _check_photo_quota(resident_id: int) -> None:
    waiting, stored = db.session.execute(
        select(func.count().filter(RequestPhoto.request_id.is_(None)), func.count())
        .where(RequestPhoto.resident_id == resident_id)).one()
    most_waiting = setting("MOBILE_PHOTOS_UNATTACHED_MAX")
    if waiting >= most_waiting:
        raise Conflict(f"at most {most_waiting} photos may wait to be part of a request",
                       code="too_many_unattached_photos", details={"max_unattached": most_waiting})
    most_stored = setting("MOBILE_PHOTOS_PER_RESIDENT_MAX")
    if stored >= most_stored:
        raise Conflict(f"at most {most_stored} photos per resident", code="photo_quota_exceeded",
                       details={"max_photos": most_stored})


def _check_photos_free(resident_id: int, photo_ids: list[int]) -> None:
    if not photo_ids:
        return
    photos = list(db.session.scalars(select(RequestPhoto).where(RequestPhoto.id.in_(photo_ids))))
    if len(photos) != len(photo_ids) or any(p.resident_id != resident_id for p in photos):
        raise NotFound("no such photo", code="unknown_photo")
    if any(p.request_id is not None for p in photos):
        raise Conflict("a photo is already part of another request", code="photo_in_use")


def _coord(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.000001"))


def _ticket_body(text: str, latitude, longitude, pole: str | None, photos: int) -> str:
    where = [f"坐标 {latitude:.6f},{longitude:.6f}" if latitude is not None else "", f"一号定位 {pole}" if pole else ""]
    lines = [text, "位置：" + "；".join(w for w in where if w)]
    if photos:
        lines.append(f"照片 {photos} 张（居民端上传）")
    return "\n".join(lines)
