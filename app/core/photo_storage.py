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

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.config import setting
from app.core.errors import DomainError, NotFound, ValidationFailed

# Format as Pillow names it -> (MIME type, file extension, save options).
FORMATS = {
    "JPEG": ("image/jpeg", "jpg", {"quality": 85, "optimize": True}),
    "PNG": ("image/png", "png", {"optimize": True}),
    "WEBP": ("image/webp", "webp", {"quality": 85}),
}
MAX_PIXELS = 40_000_000  # well above any phone camera; stops decompression bombs early
MAX_SIDE = 4096  # larger photos are scaled down: staff need to see the problem, not print it


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
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            if kind not in FORMATS:
                raise ValidationFailed("only JPEG, PNG or WebP photos are accepted", code="unsupported_photo")
            if probe.width * probe.height > MAX_PIXELS:
                raise ValidationFailed("the photo has too many pixels", code="unsupported_photo")
            probe.verify()  # structure check; a verified image must be opened again to be used
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            pixels = _pixels_only(ImageOps.exif_transpose(image), kind)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ValidationFailed("the file is not a photo", code="not_an_image") from None
    pixels.thumbnail((MAX_SIDE, MAX_SIDE))
    content_type, extension, options = FORMATS[kind]
    out = io.BytesIO()
    pixels.save(out, format=kind, **options)
    return CleanPhoto(data=out.getvalue(), content_type=content_type, extension=extension,
                      width=pixels.width, height=pixels.height)


def _pixels_only(image: Image.Image, kind: str) -> Image.Image:
    """A new image from the pixel data alone: no info dict, no EXIF, no ICC, no text chunks."""
    mode = image.mode
    if kind == "JPEG" and mode not in ("RGB", "L"):
        mode = "RGB"
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        mode = "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
    source = image.convert(mode) if image.mode != mode else image
    return Image.frombytes(mode, source.size, source.tobytes())


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
