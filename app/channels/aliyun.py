"""Alibaba Cloud's receipt push (HTTP 批量推送) for help calls and SMS: key presses, call ends, SMS replies.

Aliyun signs none of these pushes (its documentation describes no signature, header or shared secret), so what
protects them is what a deployer controls (docs/help.md, "Aliyun's receipts"):
- the URL configured in Aliyun's console carries ALIYUN_CALLBACK_TOKEN (`?token=`), compared in constant time;
- ALIYUN_CALLBACK_SOURCES, when set, limits the addresses a push may come from;
- every call's OutId is our attempt id with an HMAC under SECRET_KEY, and the report's call id must be the
  one Aliyun gave us for that attempt: a token alone cannot invent a key press;
- a report already taken (same call, same event) or older than ALIYUN_CALLBACK_MAX_AGE is not taken again.
A push without the token (or from outside the sources) is refused whole (403). Past that, each report of the batch
stands alone: one naming a call we never made (another system on the same Aliyun account, an OutId signed before
SECRET_KEY was rotated, a forgery) is skipped and logged, one taken before is already done, and the batch is
answered HTTP 200 `{"code": 0}`, which is what stops Aliyun's retries; refusing the batch would have Aliyun retry
the genuine reports in it, then drop them.
Reports are routed as on Twilio's path (app/channels/voice.py, the SMS webhook): the resident's own call of a
missed check-in and a resident's SMS 平安 are care's, the rest help's.
Aliyun answers wait 700 ms at most: the work here is a few indexed updates; SMS go by jobs.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
from datetime import datetime, timedelta, timezone

from apiflask import APIBlueprint
from flask import jsonify, request
from redis.exceptions import RedisError

from app.core.config import setting
from app.core.errors import Forbidden, ValidationFailed
from app.core.redis_client import get_redis
from app.services import care, conversations
from app.services import help as help_service

log = logging.getLogger(__name__)
bp = APIBlueprint("aliyun", __name__, url_prefix="/aliyun", enable_openapi=False)
MAX_ITEMS = 500  # Aliyun pushes at most a few hundred per batch
SHANGHAI = timezone(timedelta(hours=8))  # Aliyun's times are Beijing time without an offset
SEEN_TTL_SECONDS = 2 * 24 * 3600


def _require_push_source() -> None:
    expected = setting("ALIYUN_CALLBACK_TOKEN")
    given = request.args.get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("this push does not carry the configured token", code="invalid_callback_token")
    sources = [s.strip() for s in setting("ALIYUN_CALLBACK_SOURCES").split(",") if s.strip()]
    if sources:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            address = None
        if address is None or not any(address in ipaddress.ip_network(s, strict=False) for s in sources):
            raise Forbidden("this push comes from outside ALIYUN_CALLBACK_SOURCES", code="callback_source_refused")


bp.before_request(_require_push_source)


@bp.post("/voice-call-report")
def voice_call_report():
    return _receipts("VoiceCallReport")


@bp.post("/voice-report")
def voice_report():
    return _receipts("VoiceReport")


@bp.post("/sms-up")
def sms_up():
    return _receipts("SmsUp")


def _receipts(message_type: str):
    items = _items()
    oldest = datetime.now(SHANGHAI) - timedelta(seconds=setting("ALIYUN_CALLBACK_MAX_AGE"))
    skipped = 0
    for index, item in enumerate(items):
        report = help_service.read_provider_report(message_type, item)
        if report is None:
            # A valid token, but an OutId we never signed or a call id that is not that attempt's: not ours to take.
            log.warning("aliyun %s report %s of %s skipped: it names a call or message this app did not send "
                        "(out_id %r, call_id %r)", message_type, index + 1, len(items),
                        str(item.get("out_id"))[:64], str(item.get("call_id"))[:64])
            skipped += 1
            continue
        if _when(item) < oldest:
            log.warning("aliyun %s report %s of %s skipped: older than ALIYUN_CALLBACK_MAX_AGE", message_type,
                        index + 1, len(items))
            skipped += 1
            continue
        if not _first_time(message_type, item):
            continue  # taken before (Aliyun's retry of a push, a replay): already done
        try:
            _take(report, item)
        except Exception:
            # Not taken after all: Aliyun retries a push that failed, and that retry must not look like a replay.
            # The reports before this one are taken and remembered: the retry finds them done.
            _forget(message_type, item)
            raise
    if skipped:
        log.info("aliyun %s push: %s of %s reports skipped", message_type, skipped, len(items))
    # Aliyun checks only that `code` is a number and the status is 200.
    return jsonify(code=0, msg="接收成功")


def _take(report, item: dict) -> None:
    """One checked report, routed as Twilio's path routes the same event."""
    if report.kind == "sms_reply":
        # A contact's answer to a help request is taken here and now, never behind the bot's turns on a queue. Any
        # other text is a resident's message like one to the Twilio hotline (a 平安 check-in, "确认候补", a question):
        # a worker takes it through the SMS conversation, since Aliyun waits 700 ms at most for this answer.
        if help_service.accept_by_sms(from_phone=report.phone, text=report.text):
            return
        conversations.receive_later(channel="sms", external_id=f"aliyun-up:{_seen_key('SmsUp', item)[-40:]}",
                                    address=report.phone, text=report.text)
        return
    resident_key = False
    if report.digits and care.is_resident_call(alert_id=report.alert_id, attempt_id=report.attempt_id):
        # A missed check-in calling the resident themself: key 1 is their check-in, key 2 asks for help (care).
        resident_key = True
        digits = help_service.key_to_take(report)
        if digits:
            care.resident_key(alert_id=report.alert_id, attempt_id=report.attempt_id, digits=digits)
    help_service.take_provider_report(report, key_taken=resident_key)


def _items() -> list[dict]:
    try:
        items = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        raise ValidationFailed("the push is not JSON", code="invalid_json") from exc
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS or not all(isinstance(i, dict)
                                                                                      for i in items):
        raise ValidationFailed("the push must be a JSON array of reports", code="invalid_push")
    return items


def _when(item: dict) -> datetime:
    # VoiceCallReport has status_time, VoiceReport end_time (empty when unanswered) and originate_time, SmsUp send_time.
    raw = str(next((item[k] for k in ("status_time", "end_time", "originate_time", "send_time") if item.get(k)), ""))
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        return datetime.min.replace(tzinfo=SHANGHAI)  # no time we can read: too old to trust


def _seen_key(message_type: str, item: dict) -> str:
    # The event, not the delivery: Aliyun's own retries and a replayed capture both repeat it; a changed
    # status_time does not make a new key press.
    event = [message_type, item.get("call_id"), item.get("status_code"), item.get("dtmf"),
             item.get("phone_number"), item.get("sequence_id"), item.get("content")]
    return "aliyun:seen:" + hashlib.sha256(json.dumps(event, ensure_ascii=False, default=str).encode()).hexdigest()


def _first_time(message_type: str, item: dict) -> bool:
    try:
        return bool(get_redis().set(_seen_key(message_type, item), 1, nx=True, ex=SEEN_TTL_SECONDS))
    except RedisError:
        # Without Redis the attempt's own status still refuses a second key press of the same call.
        return True


def _forget(message_type: str, item: dict) -> None:
    try:
        get_redis().delete(_seen_key(message_type, item))
    except RedisError:
        pass
