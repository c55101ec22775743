"""A stand-in for Twilio's REST API on loopback: Messages and Calls of one account, signed status callbacks.

In tests: the `twilio_stub` fixture (tests/stubs/fixtures.py). Standalone, for `make run`:
    python -m tests.stubs.twilio_stub --port 8102 [--account-sid AC... --auth-token ... --from +1...]
then TWILIO_API_BASE=http://127.0.0.1:8102. Control over HTTP: GET /_stub/calls, POST /_stub/fail,
/_stub/reset, /_stub/opt_out, /_stub/callback.
"""
from __future__ import annotations

import argparse
import os
import re
import threading
import uuid
from email.utils import formatdate

import requests
from flask import Response, jsonify, request
from twilio.request_validator import RequestValidator

from tests.stubs.server import CONTROL_PREFIX, PlannedFailure, StubApp

DEFAULT_ACCOUNT_SID = "AC4f2e8b1c9d7a6e5f3b2c1d0e9f8a7b6c"
DEFAULT_AUTH_TOKEN = "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
DEFAULT_FROM = "+15005550006"
API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY = 1600
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
           "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")

MESSAGES = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required",
    21211: "Invalid 'To' Phone Number",
    21213: "No 'From' number is specified",
    21217: "Phone number does not appear to be valid",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number "
           "for this destination/account",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}


def twilio_error(code: int | None, status: int, message: str | None = None) -> Response:
    response = jsonify(code=code, message=message or MESSAGES.get(code, "Error"),
                       more_info=f"https://www.twilio.com/docs/errors/{code}" if code else None, status=status)
    response.status_code = status
    return response


def segments(body: str) -> int:
    # Any character outside GSM-7 turns the whole message into UCS-2: 70 per part, 67 when split.
    single, per_part = (160, 153) if set(body) <= GSM7 else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // per_part)


class TwilioStub(StubApp):
    """Twilio's API for one account, validating what it receives and recording every call."""

    def __init__(self, *, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
                 from_number: str | None = DEFAULT_FROM):
        super().__init__("twilio_stub")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number  # None: any E.164 From is accepted
        self._opted_out: set[str] = set()
        self._resources: dict[str, dict] = {}  # sid -> the JSON answered, plus the StatusCallback asked for
        self._state_lock = threading.Lock()
        base = f"/{API_VERSION}/Accounts/<account_sid>"
        add = self.flask.add_url_rule
        add(f"{base}/Messages.json", "messages", self._create_message, methods=["POST"])
        add(f"{base}/Calls.json", "calls", self._create_call, methods=["POST"])
        add(f"{CONTROL_PREFIX}opt_out", "stub_opt_out", self._http_opt_out, methods=["POST"])
        add(f"{CONTROL_PREFIX}callback", "stub_callback", self._http_callback, methods=["POST"])

    # --- control (also over HTTP) ---

    def opt_out(self, *numbers: str, opted_out: bool = True) -> None:
        """These numbers texted STOP: messages to them get 21610 (calls still go through)."""
        with self._state_lock:
            (self._opted_out.update if opted_out else self._opted_out.difference_update)(numbers)

    def sent_messages(self) -> list[dict]:
        """The Message resources created so far, oldest first."""
        return self._resources_of("SM")

    def placed_calls(self) -> list[dict]:
        """The Call resources created so far, oldest first."""
        return self._resources_of("CA")

    def status_callback(self, sid: str, status: str, **extra: str) -> requests.Response:
        """POST the status callback Twilio would send for a message or call (signed like Twilio signs)."""
        with self._state_lock:
            resource = dict(self._resources[sid])
        url = resource["_status_callback"]
        if not url:
            raise ValueError(f"{sid} was created without a StatusCallback")
        common = {"AccountSid": self.account_sid, "From": resource["from"], "To": resource["to"],
                  "ApiVersion": API_VERSION}
        if sid.startswith("CA"):
            params = {**common, "CallSid": sid, "CallStatus": status, "Direction": "outbound-api",
                      "CallbackSource": "call-progress-events", "SequenceNumber": "0"}
        else:
            params = {**common, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status}
        return self.post_signed(url, {**params, **extra})

    def post_signed(self, url: str, params: dict[str, str]) -> requests.Response:
        """POST a form to the app the way Twilio does, with X-Twilio-Signature over url and params."""
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=15)

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._opted_out.clear()
            self._resources.clear()

    def failure_response(self, failure: PlannedFailure) -> Response:
        status = failure.status or 400
        if failure.code is None and status >= 500:
            return Response(f"<html><body>{status} stub failure</body></html>", status=status, mimetype="text/html")
        return twilio_error(failure.code, status, failure.message)

    # --- the API ---

    def _create_message(self, account_sid: str):
        refused = self._check_auth(account_sid)
        if refused:
            return refused
        form = request.form
        to, from_, body, callback = form.get("To"), form.get("From"), form.get("Body"), form.get("StatusCallback")
        if not to:
            return twilio_error(21604, 400)
        if not E164.match(to):
            return twilio_error(21211, 400, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return twilio_error(21603, 400)
        if self.from_number and from_ != self.from_number:
            return twilio_error(21606, 400)
        if not body:
            return twilio_error(21602, 400)
        if len(body) > MAX_BODY:
            return twilio_error(21617, 400)
        if callback and not callback.startswith(("http://", "https://")):
            return twilio_error(21609, 400)
        with self._state_lock:
            if to in self._opted_out:
                return twilio_error(21610, 400)
        sid = "SM" + uuid.uuid4().hex
        resource = {
            **self._common_fields(sid, "Messages"), "to": to, "from": from_, "body": body,
            "status": "queued", "num_segments": str(segments(body)), "num_media": "0", "date_sent": None,
            "messaging_service_sid": None, "error_code": None, "error_message": None,
            "subresource_uris": {"media": self._uri(sid, "Messages", "/Media.json")},
        }
        return self._created(resource, callback)

    def _create_call(self, account_sid: str):
        refused = self._check_auth(account_sid)
        if refused:
            return refused
        form = request.form
        to, from_, callback = form.get("To"), form.get("From"), form.get("StatusCallback")
        if not to:
            return twilio_error(21201, 400)
        if not E164.match(to):
            return twilio_error(21217, 400)
        if not from_:
            return twilio_error(21213, 400)
        if self.from_number and from_ != self.from_number:
            return twilio_error(21606, 400)
        url = form.get("Url")
        if not url and not form.get("Twiml"):
            return twilio_error(21205, 400)
        if url and not url.startswith(("http://", "https://")):
            return twilio_error(21205, 400, f"Url is not a valid URL: {url}")
        if callback and not callback.startswith(("http://", "https://")):
            return twilio_error(21609, 400)
        timeout = form.get("Timeout", "60")
        if not timeout.isdigit():
            return twilio_error(20001, 400, f"Invalid Timeout: {timeout}")
        sid = "CA" + uuid.uuid4().hex
        resource = {
            **self._common_fields(sid, "Calls"), "to": to, "to_formatted": to, "from": from_,
            "from_formatted": from_, "status": "queued", "start_time": None, "end_time": None,
            "duration": None, "answered_by": None, "parent_call_sid": None, "phone_number_sid": None,
            "forwarded_from": None, "caller_name": None, "group_sid": None, "queue_time": "0", "trunk_sid": None,
            "subresource_uris": {"recordings": self._uri(sid, "Calls", "/Recordings.json"),
                                 "notifications": self._uri(sid, "Calls", "/Notifications.json")},
        }
        return self._created(resource, callback)

    def _check_auth(self, account_sid: str) -> Response | None:
        auth = request.authorization
        if auth is None or auth.username != self.account_sid or auth.password != self.auth_token:
            return twilio_error(20003, 401)
        if account_sid != self.account_sid:
            return twilio_error(20404, 404)
        return None

    def _common_fields(self, sid: str, kind: str) -> dict:
        now = formatdate(usegmt=True)  # Twilio's dates are RFC 2822
        return {"sid": sid, "account_sid": self.account_sid, "api_version": API_VERSION,
                "date_created": now, "date_updated": now, "direction": "outbound-api",
                "price": None, "price_unit": "USD", "uri": self._uri(sid, kind, ".json")}

    def _uri(self, sid: str, kind: str, suffix: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/{kind}/{sid}{suffix}"

    def _created(self, resource: dict, status_callback: str | None):
        with self._state_lock:
            self._resources[resource["sid"]] = {**resource, "_status_callback": status_callback}
        return jsonify(resource), 201

    def _resources_of(self, prefix: str) -> list[dict]:
        with self._state_lock:
            return [{k: v for k, v in r.items() if not k.startswith("_")}
                    for sid, r in self._resources.items() if sid.startswith(prefix)]

    # --- control over HTTP ---

    def _http_opt_out(self):
        body = request.get_json(force=True)
        self.opt_out(*body.get("numbers", []), opted_out=body.get("opted_out", True))
        return jsonify(ok=True)

    def _http_callback(self):
        body = request.get_json(force=True)
        if "sid" in body:
            answer = self.status_callback(body["sid"], body["status"], **body.get("extra", {}))
        else:
            answer = self.post_signed(body["url"], body.get("params", {}))
        return jsonify(status=answer.status_code, body=answer.text[:2000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID") or DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN") or DEFAULT_AUTH_TOKEN)
    parser.add_argument("--from", dest="from_number", default=os.environ.get("TWILIO_FROM") or DEFAULT_FROM)
    args = parser.parse_args()
    stub = TwilioStub(account_sid=args.account_sid, auth_token=args.auth_token, from_number=args.from_number)
    try:
        stub.serve(host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
