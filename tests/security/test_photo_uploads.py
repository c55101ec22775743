"""Photo uploads (随手拍), tried as an attacker would: a resident cannot upload without limit, photos never
attached to a request do not pile up in storage, and a tiny file cannot make the server decode a huge image."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from app.core import photo_storage, tasks
from app.core.errors import NotFound
from app.core.extensions import db
from app.models import RequestPhoto
from app.models.base import utcnow
from app.services import tickets
from tests.factories import ResidentFactory, StreetFactory
from tests.helpers.mobile import error_code, idem, image_bytes, sign_in

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def street(session):
    street_id = StreetFactory().id
    session.commit()
    return street_id


@pytest.fixture
def resident(client, app, session, street, storage):
    return sign_in(client, app, "13800000031")


def _upload(client, tokens, data: bytes, filename="photo.png", mimetype="image/png"):
    return client.post("/api/v1/photos", headers=idem(tokens), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename, mimetype)})


def _report(client, tokens, photo_ids):
    return client.post("/api/v1/requests", headers=idem(tokens),
                       json={"category": "sanitation", "text": "垃圾堆了三天", "pole_number": "GY0123-045",
                             "photo_ids": photo_ids})


def _bomb() -> bytes:
    """6300 x 6300 = 39.7 megapixels (under the old 40 MP cap) in about 5 KB: a bilevel PNG of one colour."""
    out = io.BytesIO()
    Image.new("1", (6300, 6300)).save(out, format="PNG", optimize=True)
    return out.getvalue()


# What clean_photo costs, measured in a fresh process: the peak resident memory while it runs (VmHWM), above what
# the process held just before; the kernel's peak is reset first, so earlier work in the process is not counted.
# (Not getrusage's ru_maxrss: it keeps the peak of the forking parent, pytest, across the exec.)
_PROBE = r"""
import io, json, sys
from flask import Flask
from PIL import Image
from app.core import photo_storage
from app.core.errors import DomainError

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

data = sys.stdin.buffer.read()
app = Flask("probe")
app.config["MOBILE_PHOTO_MAX_BYTES"] = 5 * 1024 * 1024
with app.app_context():
    for kind in ("JPEG", "PNG"):  # run the code paths once, so only the photo under test counts
        small = io.BytesIO()
        Image.new("RGB", (64, 48)).save(small, format=kind)
        photo_storage.clean_photo(small.getvalue())
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the peak restarts from what the process holds now
    before = kib("VmRSS")
    try:
        clean = photo_storage.clean_photo(data)
        outcome = {"size": [clean.width, clean.height]}
    except DomainError as exc:
        outcome = {"refused": exc.code}
    grew = (kib("VmHWM") - before) * 1024
print(json.dumps({**outcome, "grew": grew}))
"""


def _clean_in_fresh_process(data: bytes) -> dict:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("measuring a process's peak memory needs Linux's /proc")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", _PROBE], input=data, capture_output=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


# --- bounded decoding ------------------------------------------------------------------------------------

def test_a_5_kb_png_of_40_megapixels_is_refused_before_any_pixel_is_decoded():
    bomb = _bomb()
    assert len(bomb) < 10_000
    # Pillow's own guard in this process agrees with the photo rule.
    assert Image.MAX_IMAGE_PIXELS == max(photo_storage.MAX_PIXELS.values()) < 6300 * 6300
    outcome = _clean_in_fresh_process(bomb)
    assert outcome.get("refused") == "unsupported_photo", outcome
    # Decoding it takes 40 MB even at one byte a pixel (~500 MB through the former pipeline); reading its header
    # takes next to nothing.
    assert outcome["grew"] < 8 * MB, outcome


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_bomb_is_answered_422_and_nothing_is_stored(client, resident):
    response = _upload(client, resident, _bomb(), filename="bomb.png")
    assert error_code(response, 422) == "unsupported_photo"
    assert response.get_json()["error"]["details"]["max_pixels"] == photo_storage.MAX_PIXELS["PNG"]
    assert db.session.query(RequestPhoto).count() == 0


def test_a_big_allowed_jpeg_is_decoded_at_a_reduced_scale():
    width, height = 9600, 2400  # a 23 MP panorama: allowed, and twice the stored size each way
    image = Image.new("RGB", (width, height), (90, 140, 200))
    image.paste((200, 60, 40), (0, 1200, width, height))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    del image
    outcome = _clean_in_fresh_process(out.getvalue())
    assert outcome.get("size") == [4096, 1024], outcome
    # Holding the full-size pixels alone would take this much (Pillow keeps an RGB pixel in four bytes), and the
    # whole pipeline on them ~140 MB (~345 MB before this fix); decoded at half scale it takes ~60 MB.
    full_decode = width * height * 4
    assert outcome["grew"] < full_decode * 3 / 4, outcome


# --- per-resident limits ---------------------------------------------------------------------------------

def test_the_21st_upload_in_an_hour_is_refused(client, app, resident, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_PHOTOS_UNATTACHED_MAX", 100)  # the hourly rate alone
    photo = image_bytes()
    for _ in range(20):
        response = _upload(client, resident, photo)
        assert response.status_code == 201, response.get_data(as_text=True)
    refused = _upload(client, resident, photo)
    assert error_code(refused, 429) == "rate_limited"
    assert 0 < refused.get_json()["error"]["details"]["retry_after"] <= 3600
    assert db.session.query(RequestPhoto).count() == 20
    # Per resident: a neighbour still uploads.
    neighbour = sign_in(client, app, "13800000032")
    assert _upload(client, neighbour, photo).status_code == 201


def test_unattached_photos_are_capped_until_a_request_takes_them(client, resident):
    ids = []
    for _ in range(10):
        response = _upload(client, resident, image_bytes())
        assert response.status_code == 201, response.get_data(as_text=True)
        ids.append(response.get_json()["photo"]["id"])
    refused = _upload(client, resident, image_bytes())
    assert error_code(refused, 409) == "too_many_unattached_photos"
    assert refused.get_json()["error"]["details"]["max_unattached"] == 10
    assert _report(client, resident, ids[:3]).status_code == 201
    assert _upload(client, resident, image_bytes()).status_code == 201  # three were taken: room again


def test_a_resident_stores_at_most_the_total_quota(client, app, resident, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_PHOTOS_PER_RESIDENT_MAX", 4)
    ids = [_upload(client, resident, image_bytes()).get_json()["photo"]["id"] for _ in range(3)]
    assert _report(client, resident, ids).status_code == 201
    assert _upload(client, resident, image_bytes()).status_code == 201
    assert error_code(_upload(client, resident, image_bytes()), 409) == "photo_quota_exceeded"
    assert db.session.query(RequestPhoto).count() == 4


# --- the sweep ---------------------------------------------------------------------------------------------

def test_the_sweep_deletes_old_unattached_photos_and_keeps_attached_and_fresh_ones(app, session, storage):
    task = next((t for t in tasks.periodic() if t.name == "tickets.sweep_unattached_photos"), None)
    assert task is not None and task.every_seconds <= 3600, "the sweep must be a periodic job"
    resident = ResidentFactory()
    session.commit()
    long_ago = utcnow() - timedelta(hours=25)
    old, attached = (tickets.upload_photo(resident_id=resident.id, data=image_bytes(), now=long_ago)
                     for _ in range(2))
    fresh = tickets.upload_photo(resident_id=resident.id, data=image_bytes())
    tickets.report(resident_id=resident.id, category="sanitation", text="路灯不亮", pole_number="GY0123-045",
                   photo_ids=[attached.id])
    old_id, old_key = old.id, old.storage_key

    module, name = task.path.rsplit(".", 1)
    sweep = getattr(__import__(module, fromlist=[name]), name)  # as the worker runs it, by its stored path
    assert sweep() == 1

    session.expire_all()
    assert {p.id for p in session.query(RequestPhoto)} == {attached.id, fresh.id}
    assert session.get(RequestPhoto, old_id) is None
    with pytest.raises(NotFound):
        storage.load(old_key)
    assert storage.load(attached.storage_key) and storage.load(fresh.storage_key)
