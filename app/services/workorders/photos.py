"""What staff see of a report on the ticket page: thumbnails of the resident's photos (the ticket's street only,
through tickets.ticket_photo_content's check) and the place (一号定位 pole number or coordinates)."""
from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import select

from app.core.extensions import db
from app.models import ResidentRequest, Staff
from app.services import tickets

THUMB_SIDE = 240


def thumbnail(*, ticket_id: int, photo_id: int, staff: Staff) -> tuple[bytes, str]:
    """A JPEG at most THUMB_SIDE on its longer side; another street's ticket or photo is not found."""
    _, data = tickets.ticket_photo_content(ticket_id=ticket_id, photo_id=photo_id, staff=staff)
    # Stored photos were decoded and re-encoded at upload (photo_storage.clean_photo): safe to open again.
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue(), "image/jpeg"


def place_of(*, ticket_id: int, staff: Staff) -> dict | None:
    """The reported place of the request behind the ticket, or None (a ticket from chat has none)."""
    ticket = tickets.get_ticket(ticket_id=ticket_id, staff=staff)
    request = db.session.scalar(select(ResidentRequest).where(ResidentRequest.ticket_id == ticket.id))
    if request is None or (request.pole_number is None and request.latitude is None):
        return None
    return {"pole_number": request.pole_number,
            "latitude": float(request.latitude) if request.latitude is not None else None,
            "longitude": float(request.longitude) if request.longitude is not None else None}
