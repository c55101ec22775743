"""Photo checks: the type comes from the content, the size is limited, and what is stored is re-encoded
from pixels alone (no EXIF, no GPS, no text chunks)."""
from __future__ import annotations

import io

import pytest
from flask import Flask
from PIL import Image, PngImagePlugin

from app.core.errors import ValidationFailed
from app.core.photo_storage import LocalDiskStorage, PhotoTooLarge, clean_photo, new_key


@pytest.fixture(autouse=True)
def _context():
    app = Flask(__name__)
    app.config["MOBILE_PHOTO_MAX_BYTES"] = 200_000
    with app.app_context():
        yield


def _image(kind, mode="RGB", size=(40, 30), **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode != "P" else 1).save(out, format=kind, **options)
    return out.getvalue()


def test_jpeg_with_gps_comes_back_without_any_exif():
    exif = Image.Exif()
    exif[0x0110] = "Model X"
    exif.get_ifd(0x8825).update({1: "N", 2: (31.0, 12.0, 30.0)})
    clean = clean_photo(_image("JPEG", exif=exif))
    stored = Image.open(io.BytesIO(clean.data))
    assert clean.content_type == "image/jpeg" and not stored.getexif() and b"Model X" not in clean.data


def test_png_text_chunks_are_dropped_and_transparency_kept():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address: 幸福路1号")
    clean = clean_photo(_image("PNG", mode="RGBA", pnginfo=info))
    stored = Image.open(io.BytesIO(clean.data))
    assert stored.mode == "RGBA" and "Comment" not in stored.info and b"home address" not in clean.data


def test_exif_orientation_is_applied_before_it_is_dropped():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    clean = clean_photo(_image("JPEG", size=(40, 30), exif=exif))
    assert (clean.width, clean.height) == (30, 40)


def test_the_declared_name_does_not_matter_only_the_bytes():
    assert clean_photo(_image("WEBP")).content_type == "image/webp"


@pytest.mark.parametrize("data, code", [
    (b"GIF89a" + b"\0" * 20, "not_an_image"),
    (b"\xff\xd8\xff\xe0 truncated jpeg", "not_an_image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not_an_image"),
])
def test_broken_or_foreign_files_are_refused(data, code):
    with pytest.raises(ValidationFailed) as caught:
        clean_photo(data)
    assert caught.value.code == code


def test_a_gif_is_an_image_but_not_an_accepted_photo():
    with pytest.raises(ValidationFailed) as caught:
        clean_photo(_image("GIF", mode="P"))
    assert caught.value.code == "unsupported_photo"


def test_size_is_checked_before_decoding():
    with pytest.raises(PhotoTooLarge):
        clean_photo(b"\x89PNG" + b"\0" * 200_001)


def test_local_storage_keeps_keys_inside_its_directory(tmp_path):
    storage = LocalDiskStorage(str(tmp_path))
    key = new_key("png")
    storage.save(key, b"data", "image/png")
    assert storage.load(key) == b"data"
    with pytest.raises(ValueError):
        storage.load("../../etc/passwd")
