"""Residents' requests (诉求 / 随手拍): a reported problem becomes a ticket for the street's staff; the
resident follows its status and the staff's replies, and rates it once it is resolved."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update

from app.core import photo_storage
from app.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import RequestPhoto, Resident, ResidentRequest, Ticket, TicketEvent
from app.models.base import utcnow
from app.services import residents
from app.services.tickets import lifecycle as tickets

MAX_PHOTOS = 3
CATEGORY_LABELS = {"sanitation": "环境卫生", "facilities": "公共设施", "greenery": "园林绿化", "safety": "安全隐患",
                   "noise": "噪音扰民", "parking": "停车秩序", "other": "其他"}
RATABLE = ("resolved", "closed")
# The street's 一号定位 plates: letters and digits, e.g. "GY0123-045".
_POLE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,19}$")


def upload_photo(*, resident_id: int, data: bytes, now: datetime | None = None) -> RequestPhoto:
    """Check, clean and store one photo; it waits, owned by the resident, until a request takes it."""
    clean = photo_storage.clean_photo(data)
    key = photo_storage.new_key(clean.extension)
    # Stored before the row exists: a crash leaves an unreferenced file, never a row without its file.
    photo_storage.storage().save(key, clean.data, clean.content_type)
    photo = RequestPhoto(resident_id=resident_id, storage_key=key, content_type=clean.content_type,
                         width=clean.width, height=clean.height, size_bytes=len(clean.data),
                         created_at=now or utcnow())
    db.session.add(photo)
    db.session.commit()
    return photo


def photo_content(*, resident_id: int, photo_id: int) -> tuple[RequestPhoto, bytes]:
    photo = db.session.get(RequestPhoto, photo_id)
    if photo is None or photo.resident_id != resident_id:
        raise NotFound("no such photo")
    return photo, photo_storage.storage().load(photo.storage_key)


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
