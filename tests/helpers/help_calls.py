"""Shared fixtures of the help integration tests (no tests here): the app served on loopback by a real
HTTP server, talking to the Twilio stub with the real twilio client, and a way to run the queued jobs."""
from __future__ import annotations

import time

import requests

from app.core.worker import build_worker
from app.services.help import devices as help_devices
from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM

CALLS_PATH = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Calls.json"


def twilio_settings(stub) -> dict:
    return {"TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": stub.base_url}


def drain(app) -> None:
    """Run every job queued on `escalation` in this process, as a worker would (no scheduled jobs)."""
    build_worker(app, ("escalation",)).work(burst=True)


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def call_requests(stub) -> list[dict]:
    """The call requests the stub answered: To, Url, StatusCallback and the sid it gave."""
    return [{"to": r["form"]["To"], "url": r["form"]["Url"], "callback": r["form"]["StatusCallback"],
             "sid": (r["response"] or {}).get("sid")} for r in stub.calls_to(CALLS_PATH)]


def press(base_url: str, device_uid: str, secret: str, press_id: str, timestamp: int | None = None,
          signature: str | None = None) -> requests.Response:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = signature or help_devices.sign(secret, device_uid, press_id, timestamp)
    return requests.post(f"{base_url}/api/devices/{device_uid}/alerts", json={"press_id": press_id,
                         "timestamp": timestamp}, headers={"X-Linli-Signature": signature}, timeout=10)


def gather_url(call: dict) -> str:
    return call["url"].rsplit("/", 1)[0] + "/gather"
