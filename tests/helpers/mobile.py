"""Helpers of the mobile API tests (no tests here): signing residents in through the real endpoints."""
from __future__ import annotations

import io
import re
import uuid

from PIL import Image

from app.core import transports
from app.core.extensions import db


def last_code(app, phone: str) -> str:
    """The code in the newest SMS to `phone` (the recording Twilio transport keeps what was sent)."""
    with app.app_context():
        texts = transports.get().twilio.sms_to(phone)
    assert texts, f"no SMS to {phone}"
    return re.search(r"(\d{6})", texts[-1]).group(1)


def send_code(client, phone: str, ip: str = "10.0.0.1"):
    return client.post("/api/v1/auth/sms-code", json={"phone": phone}, environ_base={"REMOTE_ADDR": ip})


def sign_in(client, app, phone: str, ip: str = "10.0.0.1") -> dict:
    """Sign in by SMS code; returns the token body (access_token, refresh_token, resident_id...)."""
    db.session.commit()  # keep the test's own rows: a refused request would roll back the shared session
    response = send_code(client, phone, ip)
    assert response.status_code == 202, response.get_data(as_text=True)
    e164 = "+86" + phone if not phone.startswith("+") else phone
    response = client.post("/api/v1/auth/sign-in", json={"phone": phone, "code": last_code(app, e164)},
                           environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def bearer(tokens: dict | str, **extra) -> dict:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}", **extra}


def idem(tokens: dict, key: str | None = None) -> dict:
    return bearer(tokens, **{"Idempotency-Key": key or uuid.uuid4().hex})


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]["code"]


def image_bytes(kind: str = "PNG", size=(64, 48), exif=None, noise: bool = False) -> bytes:
    image = Image.effect_noise(size, 80).convert("RGB") if noise else Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    options = {"exif": exif} if exif is not None else {}
    image.save(out, format=kind, **options)
    return out.getvalue()
