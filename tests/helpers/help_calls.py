"""Shared fixtures of the help integration tests (no tests here): the app served on loopback by a real
HTTP server, talking to the Twilio stub with the real twilio client, and a way to run the queued jobs."""
from __future__ import annotations

import json
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


# --- the phone network of a provider: one face for the tests that run on both (Twilio and Aliyun) -----------

ALIYUN_CALLBACK_TOKEN = "test-aliyun-push-token-0123456789"
ALIYUN_PUSH_PATHS = {"VoiceCallReport": "voice-call-report", "VoiceReport": "voice-report", "SmsUp": "sms-up"}


def aliyun_settings(stub) -> dict:
    from tests.stubs.aliyun_stub import DEFAULT_SMS_TEMPLATES, DEFAULT_VOICE_TEMPLATES

    host = stub.base_url.removeprefix("http://")
    return {"TELEPHONY_PROVIDER": "aliyun", "ALIYUN_ACCESS_KEY_ID": stub.access_key_id,
            "ALIYUN_ACCESS_KEY_SECRET": stub.access_key_secret, "ALIYUN_VMS_SHOW_NUMBER": stub.show_number,
            "ALIYUN_VMS_TEMPLATES": json.dumps(DEFAULT_VOICE_TEMPLATES),
            "ALIYUN_SMS_SIGN_NAME": stub.sign_name, "ALIYUN_SMS_TEMPLATES": json.dumps(DEFAULT_SMS_TEMPLATES),
            "ALIYUN_VMS_ENDPOINT": host, "ALIYUN_SMS_ENDPOINT": host, "ALIYUN_PROTOCOL": "http",
            "ALIYUN_CALLBACK_TOKEN": ALIYUN_CALLBACK_TOKEN}


def aliyun_push_urls(base_url: str, token: str = ALIYUN_CALLBACK_TOKEN) -> dict[str, str]:
    """The push URLs a deployer enters in Aliyun's consoles, one per message type."""
    return {kind: f"{base_url}/aliyun/{path}?token={token}" for kind, path in ALIYUN_PUSH_PATHS.items()}


class TwilioNetwork:
    """Twilio's side of help calls: the calls it was asked for, slowness, call ends and key presses."""

    name = "twilio"

    def __init__(self, stub) -> None:
        self.stub = stub

    def settings(self) -> dict:
        return twilio_settings(self.stub)

    def connect(self, base_url: str) -> None:
        pass  # Twilio is told its callback URLs with each call

    def requests_count(self) -> int:
        return len(self.stub.calls_to(CALLS_PATH))

    def calls(self) -> list[dict]:
        return call_requests(self.stub)

    def slow_down_next_call(self, seconds: float) -> None:
        self.stub.fail(path=CALLS_PATH, sleep=seconds)

    def not_answered(self, call: dict) -> None:
        self.stub.status_callback(call["sid"], "no-answer")

    def press(self, call: dict, digits: str) -> str:
        """What the contact hears after the key (Twilio asks the app during the call)."""
        return self.stub.post_signed(gather_url(call), {"CallSid": call["sid"], "Digits": digits}).text


class AliyunNetwork:
    """Aliyun's side of help calls: IvrCall requests, slowness, VoiceReport ends and VoiceCallReport keys."""

    name = "aliyun"

    def __init__(self, stub) -> None:
        self.stub = stub

    def settings(self) -> dict:
        return aliyun_settings(self.stub)

    def connect(self, base_url: str) -> None:
        self.stub.report_urls = aliyun_push_urls(base_url)

    def _ivr_requests(self) -> list[dict]:
        return [r for r in self.stub.calls_to("/") if "StartCode" in r["params"]]

    def requests_count(self) -> int:
        return len(self._ivr_requests())

    def calls(self) -> list[dict]:
        return [{"to": "+86" + r["params"]["CalledNumber"], "sid": (r["response"] or {}).get("CallId"),
                 "out_id": r["params"].get("OutId")} for r in self._ivr_requests()]

    def slow_down_next_call(self, seconds: float) -> None:
        self.stub.fail(path="/IvrCall", sleep=seconds)

    def not_answered(self, call: dict) -> None:
        from tests.stubs.aliyun_stub import NOT_ANSWERED

        self.stub.report_end(call["sid"], NOT_ANSWERED)

    def press(self, call: dict, digits: str) -> str:
        """What the contact reads after the key: Aliyun's words after a key were fixed, the outcome comes by SMS."""
        before = len(self.stub.texts_to(call["to"]))
        self.stub.report_key(call["sid"], digits)
        return wait_for(lambda: self.stub.texts_to(call["to"])[before:], what="the SMS after the key")[-1]


def network_of(name: str, twilio_stub, aliyun_stub):
    return TwilioNetwork(twilio_stub) if name == "twilio" else AliyunNetwork(aliyun_stub)
