"""Photos residents upload: checked by content, re-encoded without metadata, kept behind a storage interface.

The type is sniffed from the bytes (a file name or declared type proves nothing), and every photo is
decoded and encoded again from its pixels alone, so EXIF (GPS position, camera serial) and any payload
riding in the file never reach the disk. Local disk by default; S3-compatible storage in production.
"""
from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass
from typing import Protocol

from flask import Response, current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.config import setting
from app.core.errors import DomainError, NotFound, ValidationFailed

# Format as Pillow names it -> (MIME type, file extension, save options).
FORMATS = {
    "JPEG": ("image/jpeg", "jpg", {"quality": 85, "optimize": True}),
    "PNG": ("image/png", "png", {"optimize": True}),
    "WEBP": ("image/webp", "webp", {"quality": 85}),
}
# Decoding costs pixels, not bytes, so the size in the header is checked before any pixel is read. The caps bound one
# upload's peak memory to ~240 MB, measured with the pipeline below (Pillow 13) on the costliest image each format
# allows (a 12 MP phone JPEG takes ~95 MB); the former 40 MP cap for every format let a 5 KB PNG take ~500 MB.
# - JPEG, the cameras' format: 25 MP takes the largest photo a phone saves by default (24 MP sensors write
#   5712 x 4284 = 24.5 MP) and is about all that 5 MB of JPEG can carry. 8-10 bytes a pixel (the decoded pixels,
#   then resizing); one at least twice the stored size is decoded at 1/2, 1/4 or 1/8 scale (draft), never whole.
# - PNG (screenshots: a 5K screen is 14.7 MP) is decoded whole, and a transparent one is resized through a
#   premultiplied copy: ~13 bytes a pixel.
# - WebP is decoded through libwebp's canvas and a copy of it: ~22 bytes a pixel.
MAX_PIXELS = {"JPEG": 25_000_000, "PNG": 16_000_000, "WEBP": 10_000_000}
MAX_SIDE = 4096  # larger photos are scaled down: staff need to see the problem, not print it
# Pillow's own guard, for any image this process opens, agrees: it warns above the largest cap, refuses above twice it.
Image.MAX_IMAGE_PIXELS = max(MAX_PIXELS.values())
# Resizing these would pick palette entries (or black and white) pixel by pixel: they become colours first.
_PALETTED = ("1", "P", "PA")


class PhotoTooLarge(DomainError):
    status = 413
    code = "photo_too_large"


@dataclass(frozen=True)
class CleanPhoto:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def clean_photo(data: bytes) -> CleanPhoto:
    """Check the bytes are a photo of an accepted type and size, and re-encode them without metadata."""
    limit = setting("MOBILE_PHOTO_MAX_BYTES")
    if len(data) > limit:
        raise PhotoTooLarge(f"a photo may be at most {limit // (1024 * 1024)} MB",
                            details={"max_bytes": limit})
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only: format and size, no pixels
            kind = probe.format
            if kind not in FORMATS:
                raise ValidationFailed("only JPEG, PNG or WebP photos are accepted", code="unsupported_photo")
            if probe.width * probe.height > MAX_PIXELS[kind]:
                raise _too_many_pixels(MAX_PIXELS[kind])
            probe.verify()  # structure check; a verified image must be opened again to be used
        pixels = _decode(data, kind)
    except Image.DecompressionBombError:  # Pillow's guard, above twice the largest cap, fired on the header
        raise _too_many_pixels(Image.MAX_IMAGE_PIXELS) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValidationFailed("the file is not a photo", code="not_an_image") from None
    content_type, extension, options = FORMATS[kind]
    out = io.BytesIO()
    pixels.save(out, format=kind, **options)
    return CleanPhoto(data=out.getvalue(), content_type=content_type, extension=extension,
                      width=pixels.width, height=pixels.height)


def _too_many_pixels(cap: int) -> ValidationFailed:
    return ValidationFailed(f"the photo has too many pixels (at most {cap // 1_000_000} megapixels)",
                            code="unsupported_photo", details={"max_pixels": cap})


def _decode(data: bytes, kind: str) -> Image.Image:
    """The photo's pixels at the stored size, upright, holding as little full-size image as it can."""
    image = Image.open(io.BytesIO(data))
    try:
        if kind == "JPEG":
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly (DCT scaling): asked for the stored size, it picks
            # the smallest scale still at least that large, so a photo twice the stored size is never held whole.
            image.draft(None, _stored_size(image.size))
        image.load()
        if image.mode in _PALETTED:
            colours = image.convert(_clean_mode(image, kind))
            image.close()  # release the full-size original before resizing the copy
            image = colours
        image.thumbnail((MAX_SIDE, MAX_SIDE))  # in place: the full-size pixels are released
        ImageOps.exif_transpose(image, in_place=True)
        return _pixels_only(image, kind)
    finally:
        image.close()


def _stored_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(size))
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _clean_mode(image: Image.Image, kind: str) -> str:
    mode = image.mode
    if kind == "JPEG":
        return mode if mode in ("RGB", "L") else "RGB"
    if mode in ("RGB", "RGBA", "L", "LA"):
        return mode
    transparent = "A" in image.getbands() or "transparency" in image.info
    if mode == "1" and not transparent:
        return "L"  # black and white is exact in grey, at a quarter of RGB's memory
    return "RGBA" if transparent else "RGB"


def _pixels_only(image: Image.Image, kind: str) -> Image.Image:
    """A new image from the pixel data alone: no info dict, no EXIF, no ICC, no text chunks."""
    mode = _clean_mode(image, kind)
    source = image.convert(mode) if image.mode != mode else image
    clean = Image.new(mode, source.size)
    clean.paste(source)
    return clean


# --- storage ---------------------------------------------------------------------------------------

class PhotoStorage(Protocol):
    def save(self, key: str, data: bytes, content_type: str) -> None: ...

    def load(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalDiskStorage:
    """Files under one directory (the default: <instance folder>/uploads)."""

    def __init__(self, root: str):
        self.root = root

    def save(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{secrets.token_hex(4)}.part"
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)  # readers never see half a file

    def load(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NotFound("no such photo") from None

    def delete(self, key: str) -> None:
        try:
            os.remove(self._path(key))
        except FileNotFoundError:
            pass

    def _path(self, key: str) -> str:
        # Keys are made by new_key(); the check keeps a malformed one from escaping the root anyway.
        path = os.path.realpath(os.path.join(self.root, key))
        if not path.startswith(os.path.realpath(self.root) + os.sep):
            raise ValueError("storage key outside the upload directory")
        return path


class S3CompatibleStorage:
    """Any S3-compatible object store (AWS S3, MinIO, Aliyun OSS / Tencent COS in S3 mode).

    `client` is an object with boto3's put_object / get_object / delete_object signatures; the app
    builds one with boto3 when MOBILE_PHOTO_STORAGE=s3 (boto3 is then a deployment dependency).
    """

    def __init__(self, client, bucket: str):
        self.client, self.bucket = client, bucket

    def save(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def load(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 (botocore's NoSuchKey is not importable without boto)
            if type(exc).__name__ in ("NoSuchKey", "ClientError"):
                raise NotFound("no such photo") from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def photo_response(data: bytes, content_type: str, *, cache: str) -> Response:
    """A stored photo as an inert image: its own type only, never sniffed, never run as a page if opened directly
    (no script, style or plugin may load in it), and saved under a fixed name, whatever the uploader called it."""
    extension = next((ext for mime, ext, _ in FORMATS.values() if mime == content_type), "bin")
    response = current_app.response_class(data, mimetype=content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'inline; filename="photo.{extension}"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = cache
    return response


def new_key(extension: str) -> str:
    """Unguessable, spread over 256 directories, carrying nothing about who uploaded it."""
    token = secrets.token_hex(16)
    return f"photos/{token[:2]}/{token}.{extension}"


def storage() -> PhotoStorage:
    """This app's storage (built once from configuration; tests may put their own in app.extensions)."""
    existing = current_app.extensions.get("linli_photo_storage")
    if existing is None:
        existing = current_app.extensions["linli_photo_storage"] = _build()
    return existing


def _build() -> PhotoStorage:
    cfg = current_app.config
    if cfg["MOBILE_PHOTO_STORAGE"] == "s3":
        import boto3  # only an S3 deployment needs it

        client = boto3.client("s3", endpoint_url=cfg["MOBILE_S3_ENDPOINT"] or None)
        return S3CompatibleStorage(client, cfg["MOBILE_S3_BUCKET"])
    return LocalDiskStorage(cfg["MOBILE_UPLOAD_DIR"] or os.path.join(current_app.instance_path, "uploads"))
