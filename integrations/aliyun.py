"""Alibaba Cloud voice (VMS `IvrCall`) and SMS (`SendSms`, approved templates) behind the telephony interface.

Through the official SDKs (alibabacloud-dyvmsapi20170525, alibabacloud-dysmsapi20170525), whose endpoint and
protocol are settings, so tests aim the real SDK at tests/stubs/aliyun_stub.py. Aliyun speaks only approved
words: the call's intro, the answer to each key and the SMS are template codes plus variables, and the answer
to a key is fixed when the call is placed (the key's result reaches us later, by the receipt push).
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client as VmsClient
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import DaraException, UnretryableException
from darabonba.runtime import RuntimeOptions

from integrations.telephony import CONTENT_PARAM, KeyPressCall, TelephonySendError, TextMessage

VMS_ENDPOINT = "dyvmsapi.aliyuncs.com"
SMS_ENDPOINT = "dysmsapi.aliyuncs.com"
# The voice templates a help call needs (ALIYUN_VMS_TEMPLATES): the intro, what key 1 and key 2 answer,
# and the goodbye when no key came.
VOICE_TEMPLATE_KEYS = ("intro", "key1", "key2", "no_key")
# The templates of each script (KeyPressCall.script), in that order. A missed check-in's contacts hear their own
# intro ("…今天没有按时打卡"), or the help intro where no `checkin_intro` was approved; the resident's own call has
# words of its own throughout (平安请按1; key 1 is their check-in, not "we are confirming who goes"), so without
# them that call is refused here (recorded on the alert's timeline) and the chain goes on to the contacts.
SCRIPT_TEMPLATE_KEYS = {
    "help": VOICE_TEMPLATE_KEYS,
    "checkin": ("checkin_intro", "key1", "key2", "no_key"),
    "resident": ("resident_intro", "resident_key1", "resident_key2", "resident_no_key"),
}
FALLBACK_TEMPLATE_KEYS = {"checkin_intro": "intro"}
# Aliyun's voice flow control (流控): at most 1 call a minute to a number (5 an hour, 20 a day), counted from the
# first call; a sooner one is refused with isv.BUSINESS_LIMIT_CONTROL.
MIN_REDIAL_SECONDS = 60
KEY_WAIT_MS = 8000  # how long the call waits for a key after the intro, as Twilio's Gather does
PLAY_TIMES = 2  # the intro is said twice: an old person's relative may need to hear the address again
# Business refusals come back as HTTP 200 with one of these codes; a later try can succeed. Every other code is
# permanent until someone acts: in Aliyun's lists of error codes for the voice and SMS APIs the only isp.* codes are
# isp.SYSTEM_ERROR and isp.GATEWAY_ERROR (system errors: retry) and isp.RAM_PERMISSION_DENY (the RAM user lacks
# the permission: a policy to fix, not a retry); the isv.* ones are the account, template, number or balance
# (isv.OUT_OF_SERVICE, isv.AMOUNT_NOT_ENOUGH, isv.*_TEMPLATE_ILLEGAL …), except flow control.
RETRYABLE_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling.Api",
                             "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR"})
# A variable of a notification template holds 1 to 35 characters (Aliyun's rule for templates since 2018): our own
# words (the ${content} of a template) longer than that go as several SMS, at most CONTENT_PARTS of them.
VARIABLE_MAX_CHARS = 35
CONTENT_PARTS = 5
_SIGN = re.compile(r"^\s*【[^】]{1,12}】")  # Aliyun puts the signature in front itself
_BREAKS = (re.compile(r"(?<=[。！？；!?;…\n])"), re.compile(r"(?<=[，、,：:])"))


class AliyunSendError(TelephonySendError):
    """Aliyun refused a call or an SMS (`code` is Aliyun's, e.g. isv.MOBILE_NUMBER_ILLEGAL)."""


def aliyun_number(e164: str) -> str:
    """Aliyun's number format: a mainland number without +86, any other with its country code and no plus."""
    digits = e164.removeprefix("+")
    return digits.removeprefix("86") if e164.startswith("+86") else digits


@dataclass(frozen=True)
class AliyunAccount:
    access_key_id: str
    access_key_secret: str
    show_number: str  # the real number (真实号) bought in the VMS console that calls show
    voice_templates: dict[str, str]  # VOICE_TEMPLATE_KEYS -> TTS_... template codes
    sms_sign_name: str
    sms_templates: dict[str, str]  # our logical template key -> SMS_... template code
    vms_endpoint: str = VMS_ENDPOINT
    sms_endpoint: str = SMS_ENDPOINT
    protocol: str = "https"
    timeout_ms: int = 10000


class AliyunTelephony:
    """Places IvrCalls and sends template SMS from one Alibaba Cloud account."""

    name = "aliyun"
    confirms_in_call = False
    min_redial_seconds = MIN_REDIAL_SECONDS

    def __init__(self, account: AliyunAccount):
        self._account = account
        self._vms = VmsClient(self._config(account.vms_endpoint))
        self._sms = SmsClient(self._config(account.sms_endpoint))
        self._runtime = RuntimeOptions(read_timeout=account.timeout_ms, connect_timeout=min(account.timeout_ms, 5000))

    def _config(self, endpoint: str) -> Config:
        a = self._account
        return Config(access_key_id=a.access_key_id, access_key_secret=a.access_key_secret, endpoint=endpoint,
                      protocol=a.protocol, read_timeout=a.timeout_ms, connect_timeout=min(a.timeout_ms, 5000))

    def place_call(self, call: KeyPressCall) -> str:
        intro, key1, key2, no_key = script_templates(self._account.voice_templates, call.script)
        params = json.dumps(call.speech, ensure_ascii=False)
        request = vms_models.IvrCallRequest(
            called_show_number=self._account.show_number, called_number=aliyun_number(call.to),
            start_code=intro, start_tts_params=params, play_times=PLAY_TIMES, timeout=KEY_WAIT_MS,
            menu_key_map=[vms_models.IvrCallRequestMenuKeyMap(key="1", code=key1),
                          vms_models.IvrCallRequestMenuKeyMap(key="2", code=key2)],
            bye_code=no_key, out_id=call.ref)
        body = _checked(lambda: self._vms.ivr_call_with_options(request, self._runtime))
        return body.call_id

    def send_text(self, message: TextMessage) -> str:
        """Send the template SMS (several when its ${content} is long); the BizId of the first."""
        code = self._account.sms_templates.get(message.template)
        if not code:
            raise AliyunSendError(f"no approved SMS template configured for {message.template!r}",
                                  code="template_not_configured")
        biz_ids = []
        for params in template_params(message):
            request = sms_models.SendSmsRequest(
                phone_numbers=aliyun_number(message.to), sign_name=self._account.sms_sign_name, template_code=code,
                template_param=json.dumps(params, ensure_ascii=False), out_id=message.ref or None)
            biz_ids.append(_checked(lambda r=request: self._sms.send_sms_with_options(r, self._runtime)).biz_id)
        return biz_ids[0]


def script_templates(templates: dict[str, str], script: str) -> tuple[str, str, str, str]:
    """The approved codes (intro, key 1, key 2, no key) of a call's script; refused when one is not configured."""
    keys = SCRIPT_TEMPLATE_KEYS.get(script)
    if keys is None:
        raise AliyunSendError(f"no call script {script!r}", code="template_not_configured")
    codes = [templates.get(k) or templates.get(FALLBACK_TEMPLATE_KEYS.get(k, ""), "") for k in keys]
    missing = [k for k, code in zip(keys, codes, strict=True) if not code]
    if missing:  # Settings.validate refuses a missing help template at start; the others are checked here
        raise AliyunSendError(f"ALIYUN_VMS_TEMPLATES lacks {', '.join(missing)}", code="template_not_configured")
    return codes[0], codes[1], codes[2], codes[3]


def template_params(message: TextMessage) -> list[dict[str, str]]:
    """The variables of each SMS the message becomes: one, or one per part of a ${content} too long for a variable.

    A part that was cut from a longer text keeps its place: the parts are sent in order, each a whole SMS.
    """
    content = message.params.get(CONTENT_PARAM)
    if content is None:
        return [dict(message.params)]
    return [{**message.params, CONTENT_PARAM: part} for part in content_parts(content)]


def content_parts(text: str, *, limit: int = VARIABLE_MAX_CHARS, max_parts: int = CONTENT_PARTS) -> list[str]:
    """Our words without a leading 【signature】, cut where a sentence (else a clause) ends into parts that fit a
    variable; beyond `max_parts` the last part ends with "…"."""
    text = re.sub(r"\s+", " ", _SIGN.sub("", text or "")).strip() or "-"  # Aliyun refuses an empty variable
    parts: list[str] = []
    for piece in _cut(text, limit):
        if parts and len(parts[-1]) + len(piece) <= limit:
            parts[-1] += piece
        else:
            parts.append(piece)
    parts = [p.strip() for p in parts if p.strip()]
    if len(parts) > max_parts:
        parts = parts[:max_parts]
        parts[-1] = parts[-1][:limit - 1] + "…"
    return parts


def _cut(text: str, limit: int, depth: int = 0) -> list[str]:
    if len(text) <= limit:
        return [text]
    if depth == len(_BREAKS):
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    return [piece for chunk in _BREAKS[depth].split(text) if chunk for piece in _cut(chunk, limit, depth + 1)]


def _checked(send):
    """The response body of an Aliyun call; any refusal (HTTP error or a Code other than OK) raised."""
    try:
        body = send().body
    except DaraException as exc:
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "code", None)
        transient = status is None or status >= 500 or code in RETRYABLE_CODES or str(code).startswith("Throttling")
        raise AliyunSendError(f"Aliyun {code}: {getattr(exc, 'message', exc)}", code=code,
                              transient=transient) from exc
    except (UnretryableException, OSError) as exc:  # the SDK's wrapper of connection errors and timeouts
        raise AliyunSendError(f"Aliyun unreachable: {exc}", transient=True) from exc
    if body.code != "OK":
        raise AliyunSendError(f"Aliyun {body.code}: {body.message}", code=body.code,
                              transient=body.code in RETRYABLE_CODES)
    return body


@dataclass(frozen=True)
class RecordedAliyunCall:
    call_id: str
    call: KeyPressCall


@dataclass(frozen=True)
class RecordedAliyunText:
    biz_id: str
    message: TextMessage


@dataclass(eq=False)
class RecordingAliyunTelephony:
    """Keeps what would have been placed and sent (the default without an account, and the unit-test fake)."""

    name = "aliyun"
    confirms_in_call = False
    min_redial_seconds = MIN_REDIAL_SECONDS
    calls: list[RecordedAliyunCall] = field(default_factory=list)
    texts: list[RecordedAliyunText] = field(default_factory=list)
    _planned_errors: deque = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, *errors: Exception) -> None:
        with self._lock:
            self._planned_errors.extend(errors)

    def place_call(self, call: KeyPressCall) -> str:
        with self._lock:
            if self._planned_errors:
                raise self._planned_errors.popleft()
            call_id = f"{uuid.uuid4().int % 10**12}^{uuid.uuid4().int % 10**11}"
            self.calls.append(RecordedAliyunCall(call_id=call_id, call=call))
            return call_id

    def send_text(self, message: TextMessage) -> str:
        with self._lock:
            if self._planned_errors:
                raise self._planned_errors.popleft()
            biz_id = f"{uuid.uuid4().int % 10**15}^0"
            self.texts.append(RecordedAliyunText(biz_id=biz_id, message=message))
            return biz_id


def parse_templates(raw: str, setting_name: str) -> dict[str, str]:
    """A JSON object of template codes from a setting; empty when unset."""
    if not (raw or "").strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{setting_name} must be a JSON object of template codes")
    return value


def build_aliyun_telephony(account: AliyunAccount) -> AliyunTelephony | RecordingAliyunTelephony:
    """The real provider when the account's keys and calling number are configured, else the recording one."""
    if account.access_key_id and account.access_key_secret and account.show_number:
        return AliyunTelephony(account)
    return RecordingAliyunTelephony()
