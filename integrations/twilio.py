"""SMS and voice calls through Twilio: the interfaces, the real transport (twilio-python), a recording one."""
from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

TWILIO_API_ORIGIN = "https://api.twilio.com"
OPTED_OUT = 21610  # the number texted STOP; Twilio refuses every message to it until it writes START
TOO_MANY_REQUESTS = 429


class SmsSender(Protocol):
    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> str: ...


class VoiceCaller(Protocol):
    def place_call(self, to: str, twiml_url: str, status_callback: str, timeout_seconds: int = 30) -> str: ...


class TwilioSendError(Exception):
    """Twilio refused or could not take a message or call; `code` is Twilio's error code if it gave one."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None,
                 transient: bool = False):
        super().__init__(f"Twilio error {code}: {message}" if code is not None else f"Twilio: {message}")
        self.code = code
        self.status = status
        self._transient = transient

    @property
    def opted_out(self) -> bool:
        return self.code == OPTED_OUT

    @property
    def retryable(self) -> bool:
        # 4xx means this request will never succeed as it is, except 429 which asks us to come back later.
        return self._transient or (self.status is not None
                                   and (self.status >= 500 or self.status == TOO_MANY_REQUESTS))


class _RebasedHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, aimed at another origin (Twilio's documented custom-HTTP-client route)."""

    def __init__(self, api_base: str, timeout: float):
        super().__init__(timeout=timeout)
        self._api_base = api_base.rstrip("/")
        # requests reads the proxy variables (and the CA bundle's) from the environment again on every request
        # (`trust_env`): several ms of CPU a call, which a wave of thousands of calls feels. Every request goes to
        # this one origin, so read them once, here, with requests' own rules.
        self.proxy = {**requests.utils.get_environ_proxies(self._api_base), **self.proxy}
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if self.session is not None:
            if bundle:
                self.session.verify = bundle
            self.session.trust_env = False

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API_ORIGIN):
            url = self._api_base + url[len(TWILIO_API_ORIGIN):]
        return super().request(method, url, *args, **kwargs)


class TwilioTransport:
    """Sends SMS and places calls from one Twilio number."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 api_base: str = TWILIO_API_ORIGIN, *, timeout: float = 10.0):
        self._from = from_number
        self._client = Client(account_sid, auth_token, http_client=_RebasedHttpClient(api_base, timeout))
        # twilio-python logs ten INFO lines (URL, headers) per request: at a wave of thousands of calls that is
        # real CPU and noise; its warnings and our own log lines stay.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> str:
        extra = {"status_callback": status_callback} if status_callback else {}
        message = _translated(lambda: self._client.messages.create(to=to, from_=self._from, body=body, **extra))
        return message.sid

    def place_call(self, to: str, twiml_url: str, status_callback: str, timeout_seconds: int = 30) -> str:
        # The "completed" event alone reports every end of a call: completed, busy, no-answer, failed,
        # canceled. Answering is not acceptance (voicemail answers), so "answered" is not asked for.
        call = _translated(lambda: self._client.calls.create(
            to=to, from_=self._from, url=twiml_url, status_callback=status_callback,
            status_callback_event=["completed"], timeout=timeout_seconds))
        return call.sid


def _translated(create: Callable):
    try:
        return create()
    except TwilioRestException as exc:
        raise TwilioSendError(exc.msg, code=exc.code, status=exc.status) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TwilioSendError(f"{type(exc).__name__}: {exc}", transient=True) from exc
    except (requests.RequestException, TwilioException) as exc:
        raise TwilioSendError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class RecordedSms:
    sid: str
    to: str
    body: str
    status_callback: str | None


@dataclass(frozen=True)
class RecordedCall:
    sid: str
    to: str
    twiml_url: str
    status_callback: str
    timeout_seconds: int


@dataclass(eq=False)
class RecordingTwilioTransport:
    """Keeps what would have been sent (the default without credentials, and the unit-test fake)."""

    sms: list[RecordedSms] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    _planned_errors: deque = field(default_factory=deque, repr=False)
    _opted_out: set = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, *errors: Exception) -> None:
        """The next sends or calls raise these errors, one each, in order (nothing is recorded for them)."""
        with self._lock:
            self._planned_errors.extend(errors)

    def opt_out(self, *numbers: str) -> None:
        """SMS to these numbers fails with 21610 as if they had texted STOP (calls still go through)."""
        with self._lock:
            self._opted_out.update(numbers)

    def opt_in(self, *numbers: str) -> None:
        with self._lock:
            self._opted_out.difference_update(numbers)

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> str:
        with self._lock:
            self._raise_planned()
            if to in self._opted_out:
                raise TwilioSendError("Attempt to send to unsubscribed recipient", code=OPTED_OUT, status=400)
            sid = "SM" + uuid.uuid4().hex
            self.sms.append(RecordedSms(sid=sid, to=to, body=body, status_callback=status_callback))
            return sid

    def place_call(self, to: str, twiml_url: str, status_callback: str, timeout_seconds: int = 30) -> str:
        with self._lock:
            self._raise_planned()
            sid = "CA" + uuid.uuid4().hex
            self.calls.append(RecordedCall(sid=sid, to=to, twiml_url=twiml_url, status_callback=status_callback,
                                           timeout_seconds=timeout_seconds))
            return sid

    def sms_to(self, number: str) -> list[str]:
        with self._lock:
            return [m.body for m in self.sms if m.to == number]

    def clear(self) -> None:
        with self._lock:
            self.sms.clear()
            self.calls.clear()
            self._planned_errors.clear()
            self._opted_out.clear()

    def _raise_planned(self) -> None:
        if self._planned_errors:
            raise self._planned_errors.popleft()


def build_twilio_transport(*, account_sid: str, auth_token: str, from_number: str,
                           api_base: str = TWILIO_API_ORIGIN) -> TwilioTransport | RecordingTwilioTransport:
    """The real transport when the account's credentials and number are configured, else the recording one."""
    if account_sid and auth_token and from_number:
        return TwilioTransport(account_sid, auth_token, from_number, api_base)
    return RecordingTwilioTransport()


def validate_twilio_request(auth_token: str, url: str, params, signature: str | None) -> bool:
    """True when `signature` (X-Twilio-Signature) is Twilio's signature of this public URL and form."""
    if not auth_token or not signature:
        return False
    return RequestValidator(auth_token).validate(url, params, signature)
