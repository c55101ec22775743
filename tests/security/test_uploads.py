"""Uploaded photos, tried as an attacker would: what the client says about a file (its name, its type) decides
nothing, a file that is both an image and a page or a script is stored as pixels only (or refused), names on disk
are the server's own, and a photo is served as an inert image to its owner and to the staff of its street only.

Proven elsewhere, not repeated here: the 40 MP PNG bomb, bounded decoding and the per-resident quotas
(tests/security/test_photo_uploads.py); another resident's token and no token on /api/v1/photos/<id> (404, 401:
tests/integration/test_mobile_authz.py); EXIF and GPS stripped (tests/integration/test_mobile_requests.py).
"""
from __future__ import annotations

import io
import os
import re
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from app.core import photo_storage
from app.core.extensions import db
from app.models import RequestPhoto
from app.services import tickets
from tests.factories import CommunityFactory, ResidentFactory, StaffFactory, StreetFactory
from tests.helpers.mobile import bearer, error_code, idem, image_bytes, sign_in
from tests.security.test_console_sessions import as_another_browser, login

PAYLOAD = b"<script>alert(document.cookie)</script>"
KEY = re.compile(r"^photos/([0-9a-f]{2})/(\1[0-9a-f]{30})\.(png|jpg|webp)$")


@pytest.fixture
def street(session):
    street_id = StreetFactory().id  # the first street: it answers residents signed in by phone
    session.commit()
    return street_id


@pytest.fixture
def resident(client, app, session, street, storage):
    return sign_in(client, app, "13800000051")


def _upload(client, tokens, data: bytes, filename: str, mimetype: str):
    return client.post("/api/v1/photos", headers=idem(tokens), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename, mimetype)})


def _stored_files(storage) -> list[str]:
    return sorted(os.path.relpath(os.path.join(folder, name), storage.root)
                  for folder, _, names in os.walk(storage.root) for name in names)


def _nothing_stored(storage) -> bool:
    return db.session.query(RequestPhoto).count() == 0 and _stored_files(storage) == []


# --- judged by the bytes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("filename, mimetype", [("photo.jpg", "image/gif"), ("../../etc/passwd", "image/png"),
                                                ("x.html", "text/html"), ("..\\..\\x.php", "image/jpeg")])
def test_the_clients_name_and_type_decide_nothing(client, resident, storage, tmp_path, filename, mimetype):
    response = _upload(client, resident, image_bytes("PNG"), filename, mimetype)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["photo"]["content_type"] == "image/png"  # what the bytes are
    row = db.session.query(RequestPhoto).one()
    assert row.content_type == "image/png" and KEY.match(row.storage_key).group(3) == "png", row.storage_key
    # The only file written is the generated key, inside the upload directory.
    assert _stored_files(storage) == [row.storage_key]
    assert sorted(os.listdir(tmp_path)) == ["uploads"]
    served = client.get(response.get_json()["photo"]["url"], headers=bearer(resident))
    assert served.mimetype == "image/png" and Image.open(io.BytesIO(served.data)).format == "PNG"


@pytest.mark.parametrize("key", ["../escaped.html", "photos/../../escaped.html", "{tmp}/escaped.html",
                                 "../uploads-sibling/escaped.html"])
def test_the_disk_refuses_a_key_outside_the_upload_directory(storage, tmp_path, key):
    # Keys come from new_key() alone; should a malformed one ever reach the disk, it still cannot leave the root.
    with pytest.raises(ValueError):
        storage.save(key.format(tmp=tmp_path), b"<html>" + PAYLOAD, "text/html")
    assert not [name for _, _, names in os.walk(tmp_path) for name in names]


@pytest.mark.parametrize("data", [
    b"just some notes, not a photo\n",
    b"\x89PNG\r\n\x1a\n<html><body>" + PAYLOAD,  # the PNG signature, then a page
], ids=["text", "png-signature-then-html"])
def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(client, resident, storage, data):
    assert error_code(_upload(client, resident, data, "notes.png", "image/png"), 422) == "not_an_image"
    assert _nothing_stored(storage)


# --- SVG and polyglots -----------------------------------------------------------------------------------

SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
       b'<rect width="64" height="48" fill="red"/>' + PAYLOAD + b"</svg>")


@pytest.mark.parametrize("filename, mimetype", [("drawing.svg", "image/svg+xml"), ("photo.png", "image/png")])
def test_an_svg_carrying_a_script_is_refused(client, resident, storage, filename, mimetype):
    assert error_code(_upload(client, resident, SVG, filename, mimetype), 422) == "not_an_image"
    assert _nothing_stored(storage)


def test_a_gif_carrying_a_script_is_refused(client, resident, storage):
    out = io.BytesIO()
    Image.new("P", (64, 48)).save(out, format="GIF", comment=PAYLOAD)
    gif = out.getvalue() + PAYLOAD
    assert Image.open(io.BytesIO(gif)).format == "GIF"  # a valid image, a script in its comment and after it
    assert error_code(_upload(client, resident, gif, "photo.gif", "image/gif"), 422) == "unsupported_photo"
    assert _nothing_stored(storage)


def _jpeg_with_comment() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 160, 60)).save(out, format="JPEG", comment=PAYLOAD)
    return out.getvalue()


def _jpeg_then_page() -> bytes:
    return image_bytes("JPEG") + b"<html><body>" + PAYLOAD + b"</body></html>"


def _png_with_text_then_page() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", PAYLOAD.decode())
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 160, 60)).save(out, format="PNG", pnginfo=info)
    return out.getvalue() + b"<html><body>" + PAYLOAD


@pytest.mark.parametrize("make, kind", [(_jpeg_with_comment, "JPEG"), (_jpeg_then_page, "JPEG"),
                                        (_png_with_text_then_page, "PNG")],
                         ids=["jpeg-comment", "jpeg-then-html", "png-text-chunk-then-html"])
def test_an_image_carrying_a_script_is_stored_as_its_pixels_alone(client, resident, storage, make, kind):
    polyglot = make()
    assert PAYLOAD in polyglot and Image.open(io.BytesIO(polyglot)).format == kind
    response = _upload(client, resident, polyglot, "photo.jpg", "image/jpeg")
    assert response.status_code == 201, response.get_data(as_text=True)
    row = db.session.query(RequestPhoto).one()
    stored = storage.load(row.storage_key)
    served = client.get(response.get_json()["photo"]["url"], headers=bearer(resident)).data
    assert served == stored
    for marker in (b"<script", b"alert(", b"<html", b"document.cookie"):
        assert marker not in stored.lower(), marker
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == kind and image.size == (64, 48) and not image.info.get("comment")
        assert "Comment" not in image.info


# --- a 20000 x 20000 bomb --------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(side: int) -> bytes:
    """A valid bilevel PNG, side x side pixels of one colour, written row by row (never held whole)."""
    row = bytes(1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b""))


def _jpeg_bomb(side: int) -> bytes:
    """A small JPEG whose frame header claims side x side pixels."""
    data = bytearray(image_bytes("JPEG"))
    frame = data.index(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2)
    data[frame + 5:frame + 9] = struct.pack(">HH", side, side)
    return bytes(data)


@pytest.mark.parametrize("make", [_png_bomb, _jpeg_bomb], ids=["png", "jpeg"])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_20000_by_20000_bomb_is_refused_from_its_header(client, resident, storage, monkeypatch, make):
    # 400 MP, past twice the largest cap: Pillow's own guard fires while the header is read, a path the 40 MP bomb of
    # test_photo_uploads.py (under twice the cap) never takes. Decoding must not start at all.
    bomb = make(20_000)
    assert len(bomb) < 64 * 1024
    with Image.open(io.BytesIO(image_bytes("PNG"))):
        pass  # Pillow's plugins are loaded: the guard below is only about the bomb

    decoded = []

    def no_decoding(data, kind):
        decoded.append(kind)
        raise AssertionError("a bomb reached the decoder")

    monkeypatch.setattr(photo_storage, "_decode", no_decoding)
    response = _upload(client, resident, bomb, "bomb.png", "image/png")
    assert decoded == [], "a bomb reached the decoder"
    assert error_code(response, 422) == "unsupported_photo"
    assert response.get_json()["error"]["details"]["max_pixels"] <= max(photo_storage.MAX_PIXELS.values())
    assert _nothing_stored(storage)


# --- serving: the owner, with safe headers ---------------------------------------------------------------

def _assert_inert_image(response, content_type: str) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r'inline; filename="photo\.(png|jpg|webp)"', response.headers["Content-Disposition"])
    policy = [part.strip() for part in response.headers["Content-Security-Policy"].split(";")]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "private" in response.headers["Cache-Control"] or "no-store" in response.headers["Cache-Control"]


def test_the_owner_gets_the_photo_as_an_inert_image(client, resident):
    photo = _upload(client, resident, image_bytes("PNG"), "x.html", "text/html").get_json()["photo"]
    _assert_inert_image(client.get(photo["url"], headers=bearer(resident)), "image/png")


# --- serving: the staff of the ticket's street only ------------------------------------------------------

@pytest.fixture
def reported(session, storage):
    """A resident's request with two photos, the ticket it opened, staff of its street and of another street (with
    a ticket of their own), and a photo of the same resident not yet part of any request."""
    street = StreetFactory()
    resident = ResidentFactory(community=CommunityFactory(street=street))
    session.commit()
    photos = [tickets.upload_photo(resident_id=resident.id, data=image_bytes(kind)) for kind in ("PNG", "JPEG")]
    spare = tickets.upload_photo(resident_id=resident.id, data=image_bytes())
    filed = tickets.report(resident_id=resident.id, category="sanitation", text="垃圾堆了三天",
                           pole_number="GY0123-045", photo_ids=[p.id for p in photos])
    other_street = StreetFactory()
    foreign = tickets.open_ticket(street_id=other_street.id, source="bot", subject="别的街道")
    world = {"ticket": filed.ticket_id, "photos": [(p.id, p.content_type, p.storage_key) for p in photos],
             "spare": spare.id, "staff": StaffFactory(street=street), "lead": StaffFactory(street=street, role="admin"),
             "outsider": StaffFactory(street=other_street), "foreign_ticket": foreign.id}
    session.commit()
    return world


def _photo_url(ticket_id: int, photo_id: int) -> str:
    return f"/console/tickets/{ticket_id}/photos/{photo_id}"


def _get(browser, url: str, **kwargs):
    as_another_browser()  # the test clients share one app context: each request must find its own session
    return browser.get(url, **kwargs)


@pytest.mark.parametrize("who", ["staff", "lead"])
def test_staff_of_the_street_see_the_photos_on_the_ticket(app, reported, storage, who):
    browser = app.test_client()
    login(browser, reported[who])
    page = _get(browser, f"/console/tickets/{reported['ticket']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for photo_id, content_type, key in reported["photos"]:
        # A thumbnail on the page (issue 21), linked to the photo itself.
        assert re.search(rf'<a href="{re.escape(_photo_url(reported["ticket"], photo_id))}"[^>]*><img [^>]*src="'
                         rf'{re.escape(_photo_url(reported["ticket"], photo_id))}/thumb"', html), html
        response = _get(browser, _photo_url(reported["ticket"], photo_id))
        _assert_inert_image(response, content_type)
        assert response.data == storage.load(key)


def test_staff_of_another_street_get_404(app, reported):
    browser = app.test_client()
    login(browser, reported["outsider"])
    photo_id = reported["photos"][0][0]
    assert _get(browser, _photo_url(reported["ticket"], photo_id)).status_code == 404
    # Nor through a ticket of their own street.
    assert _get(browser, _photo_url(reported["foreign_ticket"], photo_id)).status_code == 404
    assert b"photos/" not in _get(browser, f"/console/tickets/{reported['foreign_ticket']}").data


def test_a_photo_is_served_only_through_its_own_ticket(app, reported, session):
    browser = app.test_client()
    login(browser, reported["staff"])
    # Another ticket of the same street, and a photo no request has taken yet (the resident's own until then).
    other = tickets.open_ticket(street_id=reported["staff"].street_id, source="bot", subject="别的工单")
    session.commit()
    assert _get(browser, _photo_url(other.id, reported["photos"][0][0])).status_code == 404
    assert _get(browser, _photo_url(reported["ticket"], reported["spare"])).status_code == 404
    assert _get(browser, _photo_url(reported["ticket"], 987654)).status_code == 404


def test_without_a_session_the_photo_is_not_served(app, reported):
    browser = app.test_client()
    url = _photo_url(reported["ticket"], reported["photos"][0][0])
    page = _get(browser, url)
    assert page.status_code == 302 and page.headers["Location"].startswith("/console/login")
    fetched = _get(browser, url, headers={"Accept": "application/json"})
    assert fetched.status_code == 401 and fetched.get_json()["error"]["code"] == "login_required"
