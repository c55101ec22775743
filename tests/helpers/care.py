"""Small clients of the elder-care routes: signed heartbeats and button check-ins, as a device sends them."""
from __future__ import annotations

import hashlib
import hmac
import time

import requests

from app.services.care import canonical_checkin, sign_heartbeat

SMS_PATH_SUFFIX = "/Messages.json"


def heartbeat(base_url: str, device_uid: str, secret: str, *, battery: int = 80, timestamp: int | None = None,
              interval_seconds: int | None = None, signature: str | None = None) -> requests.Response:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = signature or sign_heartbeat(secret, device_uid, battery, interval_seconds, timestamp)
    body = {"battery": battery, "timestamp": timestamp}
    if interval_seconds:
        body["interval_seconds"] = interval_seconds
    return requests.post(f"{base_url}/api/devices/{device_uid}/heartbeats", json=body,
                         headers={"X-Linli-Signature": signature}, timeout=10)


def device_checkin(base_url: str, device_uid: str, secret: str, *, timestamp: int | None = None) -> requests.Response:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), canonical_checkin(device_uid, timestamp).encode(),
                         hashlib.sha256).hexdigest()
    return requests.post(f"{base_url}/api/devices/{device_uid}/checkins", json={"timestamp": timestamp},
                         headers={"X-Linli-Signature": signature}, timeout=10)


def sms_to(stub) -> list[tuple[str, str]]:
    """(to, body) of every SMS the Twilio stub was asked to send."""
    return [(m["to"], m["body"]) for m in stub.sent_messages()]
