"""Requests (随手拍) from the app: photo uploads checked by content with EXIF stripped, a report becoming a
staff ticket once even when retried, staff replies and status visible to the resident, rating once."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from app.core.extensions import db
from app.models import RequestPhoto, Street, Ticket, TicketEvent
from app.services.tickets import lifecycle as tickets
from tests.factories import StaffFactory, StreetFactory
from tests.helpers.mobile import bearer, error_code, idem, image_bytes, sign_in

GPS_IFD = 0x8825


@pytest.fixture
def street(session):
    street_id = StreetFactory().id
    session.commit()
    return street_id


@pytest.fixture
def resident(client, app, session, street, storage):
    return sign_in(client, app, "13800000011")


def _upload(client, tokens, data: bytes, filename="photo.jpg", mimetype="image/jpeg", key=None):
    return client.post("/api/v1/photos", headers=idem(tokens, key), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename, mimetype)})


def _report(client, tokens, key=None, **overrides):
    body = {"category": "sanitation", "text": "小区门口垃圾堆了三天", "pole_number": "gy0123-045", **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/api/v1/requests", headers=idem(tokens, key), json=body)


def _gps_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (31.0, 12.0, 30.0), 3: "E", 4: (121.0, 28.0, 5.0)})
    data = image_bytes("JPEG", exif=exif)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD), "the fixture photo must carry GPS"
    return data


# --- uploads ---------------------------------------------------------------------------------------

def test_a_png_named_jpg_is_stored_as_the_png_it_is(client, resident):
    response = _upload(client, resident, image_bytes("PNG"), filename="holiday.jpg", mimetype="image/jpeg")
    assert response.status_code == 201, response.get_data(as_text=True)
    photo = response.get_json()["photo"]
    assert photo["content_type"] == "image/png" and (photo["width"], photo["height"]) == (64, 48)
    fetched = client.get(photo["url"], headers=bearer(resident))
    assert fetched.mimetype == "image/png" and Image.open(io.BytesIO(fetched.data)).format == "PNG"


def test_exif_and_its_gps_position_are_stripped(client, resident, storage):
    response = _upload(client, resident, _gps_jpeg())
    photo = response.get_json()["photo"]
    stored = client.get(photo["url"], headers=bearer(resident)).data
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG"
    assert not image.getexif() and not image.getexif().get_ifd(GPS_IFD)
    assert b"Exif" not in stored and b"PhoneMaker" not in stored


def test_a_file_that_is_not_an_image_is_refused(client, resident):
    response = _upload(client, resident, b"%PDF-1.4 not a photo at all", filename="scan.jpg")
    assert error_code(response, 422) == "not_an_image"
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, format="GIF")
    assert error_code(_upload(client, resident, gif.getvalue(), filename="a.png"), 422) == "unsupported_photo"


def test_an_oversized_photo_is_refused(client, app, resident, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_PHOTO_MAX_BYTES", 20_000)
    big = image_bytes("PNG", size=(100, 100), noise=True)
    assert 20_000 < len(big) < 40_000
    assert error_code(_upload(client, resident, big), 413) == "photo_too_large"
    huge = image_bytes("PNG", size=(300, 300), noise=True)  # far past the limit: refused before it is read
    assert error_code(_upload(client, resident, huge), 413) == "request_entity_too_large"
    assert db.session.query(RequestPhoto).count() == 0


# --- reporting -------------------------------------------------------------------------------------

def test_a_report_with_photos_becomes_a_resident_ticket_for_staff(client, resident, street):
    photo_ids = [_upload(client, resident, image_bytes()).get_json()["photo"]["id"] for _ in range(2)]
    response = _report(client, resident, photo_ids=photo_ids, latitude=31.2304, longitude=121.4737)
    assert response.status_code == 201, response.get_data(as_text=True)
    filed = response.get_json()["request"]
    assert filed["status"] == "open" and filed["status_label"] == "处理中" and filed["pole_number"] == "GY0123-045"
    assert [p["id"] for p in filed["photos"]] == photo_ids and filed["can_rate"] is False
    ticket = db.session.query(Ticket).one()
    assert (ticket.source, ticket.street_id, ticket.category) == ("resident", street, "report")
    assert "垃圾" in ticket.subject and "GY0123-045" in ticket.events[0].body
    # A photo belongs to one request only.
    assert error_code(_report(client, resident, photo_ids=photo_ids[:1]), 409) == "photo_in_use"


def test_a_retried_report_files_one_ticket(client, resident):
    first = _report(client, resident, key="report-once-1")
    retry = _report(client, resident, key="report-once-1")
    assert first.status_code == retry.status_code == 201 and retry.get_json() == first.get_json()
    assert db.session.query(Ticket).count() == 1


def test_a_report_needs_a_place_and_at_most_three_photos(client, resident):
    assert error_code(_report(client, resident, pole_number=None), 422) == "location_required"
    assert error_code(_report(client, resident, pole_number=None, latitude=31.2), 422) == "invalid_location"
    assert error_code(_report(client, resident, pole_number="#!"), 422) == "invalid_pole_number"
    assert error_code(_report(client, resident, photo_ids=[1, 2, 3, 4]), 422) == "validation_error"
    assert error_code(_report(client, resident, photo_ids=[987654]), 404) == "unknown_photo"


def test_the_resident_sees_staff_replies_and_rates_once_when_resolved(client, resident, street):
    request_id = _report(client, resident).get_json()["request"]["id"]
    ticket_id = db.session.query(Ticket.id).scalar()
    staff_id = StaffFactory(street=db.session.get(Street, street)).id
    db.session.commit()
    # A report has no chat behind it: the reply reaches the resident on the channel they have.
    sent = tickets.reply(ticket_id=ticket_id, staff_id=staff_id, body="已安排保洁，今天清理")
    assert (sent.channel, sent.kind, sent.body) == ("sms", "staff_reply", "已安排保洁，今天清理")
    tickets.add_note(ticket_id=ticket_id, staff_id=staff_id, body="内部备注：联系物业")
    assert error_code(client.post(f"/api/v1/requests/{request_id}/rating", headers=idem(resident),
                                  json={"score": 5}), 409) == "not_resolved"
    tickets.resolve_ticket(ticket_id=ticket_id, staff_id=staff_id)

    detail = client.get(f"/api/v1/requests/{request_id}", headers=bearer(resident)).get_json()
    assert [r["body"] for r in detail["replies"]] == ["已安排保洁，今天清理"]
    assert detail["request"]["status"] == "resolved" and detail["request"]["can_rate"] is True
    rated = client.post(f"/api/v1/requests/{request_id}/rating", headers=idem(resident),
                        json={"score": 4, "comment": "很及时"}).get_json()["request"]
    assert (rated["rating"], rated["rating_comment"], rated["can_rate"]) == (4, "很及时", False)
    assert db.session.get(Ticket, ticket_id).csat_score == 4
    assert db.session.query(TicketEvent).filter_by(ticket_id=ticket_id, kind="csat").count() == 1
    again = client.post(f"/api/v1/requests/{request_id}/rating", headers=idem(resident), json={"score": 1})
    assert error_code(again, 409) == "already_rated"
