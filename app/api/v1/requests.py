"""Requests (诉求 / 随手拍): photos, reporting a problem, following it, rating it."""
from __future__ import annotations

from flask import request

from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current, idempotent
from app.api.v1.schemas import (
    PageQuery,
    PhotoEnvelope,
    PhotoUploadIn,
    RatingIn,
    RequestEnvelope,
    RequestIn,
    RequestsPage,
)
from app.core import photo_storage
from app.core.config import setting
from app.core.pagination import page_query
from app.models import ResidentRequest
from app.services import tickets

TAG = "Mobile: requests"
# Room for the multipart envelope around a photo of the largest accepted size.
_ENVELOPE = 64 * 1024


@bp.before_request
def _room_for_photos():
    # The app-wide body limit (1 MB) suits JSON; photo uploads get their own, so an oversized photo is
    # refused by the photo rule (413 photo_too_large) and anything far bigger before it is read.
    if request.endpoint == "mobile_v1.upload_photo":
        request.max_content_length = setting("MOBILE_PHOTO_MAX_BYTES") * 2 + _ENVELOPE


@bp.post("/photos")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(PhotoUploadIn, location="files", arg_name="body")
@bp.output(PhotoEnvelope, status_code=201)
@bp.doc(summary="Upload one photo for a request (checked, metadata stripped)", tags=[TAG],
        responses=[409, 413, 422, 429])
def upload_photo(body):
    return {"photo": tickets.upload_photo(resident_id=current().resident_id, data=body["file"].read())}


@bp.get("/photos/<int:photo_id>")
@bp.auth_required(auth)
@bp.doc(summary="A photo the resident uploaded", tags=[TAG], responses=[404])
def photo(photo_id: int):
    row, data = tickets.photo_content(resident_id=current().resident_id, photo_id=photo_id)
    return photo_storage.photo_response(data, row.content_type, cache="private, max-age=86400")


@bp.post("/requests")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(RequestIn, arg_name="body")
@bp.output(RequestEnvelope, status_code=201)
@bp.doc(summary="Report a problem (becomes a ticket for the street's staff)", tags=[TAG], responses=[404, 409, 422])
def report(body):
    filed = tickets.report(resident_id=current().resident_id, **body)
    return {"request": filed, "replies": []}


@bp.get("/requests")
@bp.auth_required(auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(RequestsPage)
@bp.doc(summary="The resident's requests, newest first", tags=[TAG], responses=[422])
def list_requests(query):
    me = current().resident_id
    page = page_query(tickets.requests_of(resident_id=me), scope=f"requests:{me}",
                      columns=(ResidentRequest.created_at, ResidentRequest.id), descending=True,
                      cursor=query.get("cursor"), limit=query["limit"])
    return {"requests": page.items, "next_cursor": page.next_cursor}


@bp.get("/requests/<int:request_id>")
@bp.auth_required(auth)
@bp.output(RequestEnvelope)
@bp.doc(summary="A request with its status and the staff's replies", tags=[TAG], responses=[404])
def get_request(request_id: int):
    filed = tickets.get_request(resident_id=current().resident_id, request_id=request_id)
    return {"request": filed, "replies": tickets.replies(request=filed)}


@bp.post("/requests/<int:request_id>/rating")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(RatingIn, arg_name="body")
@bp.output(RequestEnvelope)
@bp.doc(summary="Rate a resolved request, 1 to 5, once", tags=[TAG], responses=[404, 409, 422])
def rate(request_id: int, body):
    filed = tickets.rate(resident_id=current().resident_id, request_id=request_id, **body)
    return {"request": filed, "replies": tickets.replies(request=filed)}
