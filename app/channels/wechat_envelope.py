"""The WeChat official account's envelope: proving who sent a request (signature, replay window, safe-mode AES),
reading it without trusting it (size cap, no DTD or entities), and the passive reply that goes back in the HTTP
answer. Protocol only: what a message means is the conversations domain's business."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from flask import current_app
from redis.exceptions import RedisError
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from app.core.redis_client import get_redis

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_CLOCK_SKEW = 300  # seconds; an older signed request is a replay
SUCCESS = "success"  # tells WeChat "received, no passive reply" (it does not retry)
REQUIRED_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType")


class RejectedRequest(Exception):
    """The request is not a genuine, fresh, well-formed WeChat message; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Keys:
    token: str
    aes_key: str
    app_id: str

    @classmethod
    def from_config(cls) -> "Keys":
        cfg = current_app.config
        return cls(cfg["WECHAT_TOKEN"], cfg.get("WECHAT_AES_KEY", ""), cfg.get("WECHAT_APP_ID", ""))


def signature_of(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _check_signature(given: str | None, *parts: str) -> None:
    # Constant time: wechatpy's own check compares with `!=`, which leaks the matching prefix length.
    if not given or not hmac.compare_digest(signature_of(*parts).encode(), given.encode()):
        raise RejectedRequest(403, "bad signature")


def _check_fresh(timestamp: str | None, now: float) -> str:
    try:
        sent = int(timestamp or "")
    except ValueError:
        raise RejectedRequest(400, "bad timestamp") from None
    if abs(now - sent) > MAX_CLOCK_SKEW:
        raise RejectedRequest(403, "stale timestamp")
    return str(timestamp)


def _check_not_replayed(signature: str, timestamp: str, nonce: str, body: bytes) -> None:
    """Plain mode signs no body: remember each signature with its body's digest while it is fresh.

    The same body again is WeChat retrying (the inbound dedup answers it once); another body under a captured
    signature is a forgery. Without Redis the check is skipped rather than refusing residents' messages (the
    window is short, and production runs in safe mode, whose signature covers the body).
    """
    key = "linli:wechat:signed:" + hashlib.sha1(f"{signature}:{timestamp}:{nonce}".encode()).hexdigest()
    digest = hashlib.sha256(body).hexdigest()
    try:
        redis = get_redis()
        if redis.set(key, digest, nx=True, ex=2 * MAX_CLOCK_SKEW):
            return
        seen = redis.get(key)
    except RedisError as exc:
        log.warning("replay check skipped, redis unavailable: %s", type(exc).__name__)
        return
    if seen is not None and seen.decode() != digest:
        raise RejectedRequest(403, "signature already used for another message")


def verify_url(*, query: dict, now: float | None = None) -> str:
    """WeChat's URL check when the server address is saved: echo `echostr` if the signature is ours."""
    keys = Keys.from_config()
    timestamp = _check_fresh(query.get("timestamp"), time.time() if now is None else now)
    _check_signature(query.get("signature"), keys.token, timestamp, query.get("nonce", ""))
    return query.get("echostr", "")


def parse_xml(data: bytes | str) -> dict[str, str]:
    """The top-level fields of a WeChat XML document; DTDs, entities and malformed input are refused.

    A field with elements inside (the <List> records of subscribe-message events) is a JSON list of records."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, TypeError):
        raise RejectedRequest(400, "malformed xml") from None
    if root.tag != "xml":
        raise RejectedRequest(400, "not a wechat message")
    return {child.tag: _field_value(child) for child in root}


def _field_value(element) -> str:
    if len(element) == 0:
        return element.text or ""
    return json.dumps([{part.tag: (part.text or "") for part in record} for record in element], ensure_ascii=False)


def open_envelope(*, query: dict, body: bytes, now: float | None = None) -> dict[str, str]:
    """Authenticate and decode one POSTed message; the message fields (decrypted in safe mode)."""
    if len(body) > MAX_BODY:
        raise RejectedRequest(413, "body too large")
    keys = Keys.from_config()
    timestamp = _check_fresh(query.get("timestamp"), time.time() if now is None else now)
    nonce = query.get("nonce", "")
    if keys.aes_key:
        envelope = parse_xml(body)
        encrypted = envelope.get("Encrypt")
        if query.get("encrypt_type") != "aes" or not encrypted:
            raise RejectedRequest(400, "safe mode expects an encrypted message")
        _check_signature(query.get("msg_signature"), keys.token, timestamp, nonce, encrypted)
        crypto = WeChatCrypto(keys.token, keys.aes_key, keys.app_id)
        try:
            # A dict skips wechatpy's own (unguarded) XML parsing; the signature is already checked.
            plaintext = crypto.decrypt_message({"Encrypt": encrypted}, query["msg_signature"], timestamp, nonce)
        except InvalidAppIdException:
            raise RejectedRequest(403, "message for another app id") from None
        except Exception:  # bad base64, padding or length inside: not from WeChat
            raise RejectedRequest(400, "undecryptable message") from None
        fields = parse_xml(plaintext)
    else:
        _check_signature(query.get("signature"), keys.token, timestamp, nonce)
        _check_not_replayed(query["signature"], timestamp, nonce, body)
        fields = parse_xml(body)
    missing = [name for name in REQUIRED_FIELDS if not fields.get(name)]
    if missing or len(fields["FromUserName"]) > 64:
        raise RejectedRequest(400, "missing fields: " + ", ".join(missing))
    # CreateTime keys the dedup of events (ev:<openid>:<CreateTime>): a Unix time, nothing longer.
    if not (fields["CreateTime"].isdigit() and len(fields["CreateTime"]) <= 12):
        raise RejectedRequest(400, "CreateTime is not a timestamp")
    return {name: value.replace("\x00", "") for name, value in fields.items()}


def passive_reply(fields: dict[str, str], text: str) -> str:
    """The reply XML for the message in `fields`, encrypted again in safe mode."""
    reply = TextReply(source=fields["ToUserName"], target=fields["FromUserName"],
                      content=text.replace("]]>", "]]]]><![CDATA[>"), time=int(time.time())).render()
    keys = Keys.from_config()
    if not keys.aes_key:
        return reply
    crypto = WeChatCrypto(keys.token, keys.aes_key, keys.app_id)
    return crypto.encrypt_message(reply, secrets.token_hex(8), str(int(time.time())))
