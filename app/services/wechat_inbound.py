"""The WeChat official account's webhook: proving who sent a request (signature, replay window, safe-mode
AES), reading it without trusting it (size cap, no DTD or entities), the menu and subscription events, and
the passive reply that goes back in the HTTP answer."""
from __future__ import annotations

import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from flask import current_app
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from app.errors import DomainError
from app.services import conversations

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_CLOCK_SKEW = 300  # seconds; an older signed request is a replay
SUCCESS = "success"  # tells WeChat "received, no passive reply" (it does not retry)
REQUIRED_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
UNSUPPORTED_KINDS = ("image", "location", "link", "video", "shortvideo", "file", "music")
ANSWERED_EVENTS = ("subscribe", "unsubscribe", "click")
# A passive reply is one message; WeChat cuts text above about 2048 bytes.
PASSIVE_MAX_BYTES = 2000

WELCOME = ("您好，欢迎关注“邻里”街道服务号！我可以帮您：\n"
           "1. 社区医院预约挂号，查看或取消预约（菜单“我的预约”）\n"
           "2. 查询办事指南：社保、居住证、养老补贴等\n"
           "3. 一键求助：菜单“一键求助”立即联系您的紧急联系人\n"
           "4. 联系工作人员：菜单“联系工作人员”\n"
           "直接发文字或语音给我就可以。")
CAPABILITIES = ("抱歉，我暂时只能看懂文字和语音。您可以直接打字告诉我：预约挂号、查询办事指南，"
                "或者说“转人工”联系工作人员。")
ASK_TO_TYPE = "抱歉，没能听清您的语音，请打字告诉我您需要什么。"
HELP_RAISED = "已收到您的求助，正在依次联系您的紧急联系人和社区工作人员，请保持电话畅通。"
STAFF_CALLED = "已为您转接工作人员，请直接留言，工作人员会尽快回复您。"
NO_APPOINTMENTS = "您目前没有待就诊的预约。发送“挂号”即可预约社区医院。"


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


def verify_url(*, query: dict, now: float | None = None) -> str:
    """WeChat's URL check when the server address is saved: echo `echostr` if the signature is ours."""
    keys = Keys.from_config()
    timestamp = _check_fresh(query.get("timestamp"), time.time() if now is None else now)
    _check_signature(query.get("signature"), keys.token, timestamp, query.get("nonce", ""))
    return query.get("echostr", "")


def parse_xml(data: bytes | str) -> dict[str, str]:
    """The top-level fields of a WeChat XML document; DTDs, entities and malformed input are refused."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, TypeError):
        raise RejectedRequest(400, "malformed xml") from None
    if root.tag != "xml":
        raise RejectedRequest(400, "not a wechat message")
    return {child.tag: (child.text or "") for child in root}


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
        fields = parse_xml(body)
    missing = [name for name in REQUIRED_FIELDS if not fields.get(name)]
    if missing or len(fields["FromUserName"]) > 64:
        raise RejectedRequest(400, "missing fields: " + ", ".join(missing))
    # CreateTime keys the dedup of events (ev:<openid>:<CreateTime>): a Unix time, nothing longer.
    if not (fields["CreateTime"].isdigit() and len(fields["CreateTime"]) <= 12):
        raise RejectedRequest(400, "CreateTime is not a timestamp")
    return {name: value.replace("\x00", "") for name, value in fields.items()}


def answer(*, query: dict, body: bytes, budget: float, now: float | None = None) -> str:
    """The HTTP answer to one webhook POST: a passive reply, or "success" when the reply goes by 客服 API."""
    fields = open_envelope(query=query, body=body, now=now)
    text = _receive(fields, budget=budget)
    return passive_reply(fields, text) if text else SUCCESS


def _receive(fields: dict[str, str], *, budget: float) -> str | None:
    openid = fields["FromUserName"]
    msg_type = fields["MsgType"].lower()
    if msg_type == "event":
        event = fields.get("Event", "").lower()
        if event not in ANSWERED_EVENTS:
            return None  # VIEW, LOCATION reports, template receipts: nothing to say, nothing to keep
        # Events carry no MsgId; WeChat's retries of one event repeat FromUserName + CreateTime.
        outcome = conversations.receive(
            channel="wechat", external_id=f"ev:{openid}:{fields['CreateTime']}", address=openid,
            kind="event", text=f"{event}:{fields.get('EventKey', '')}", budget=budget,
        )
    else:
        kind = msg_type if msg_type in ("text", "voice") else "unsupported"
        text = fields.get("Content", "") if kind == "text" else fields.get("Recognition", "")
        external_id = fields.get("MsgId") or f"msg:{openid}:{fields['CreateTime']}"
        outcome = conversations.receive(channel="wechat", external_id=external_id[:80], address=openid,
                                        kind=kind, text=text.strip(), budget=budget)
    return outcome.passive_text


def passive_reply(fields: dict[str, str], text: str) -> str:
    """The reply XML for the message in `fields`, encrypted again in safe mode."""
    reply = TextReply(source=fields["ToUserName"], target=fields["FromUserName"],
                      content=text.replace("]]>", "]]]]><![CDATA[>"), time=int(time.time())).render()
    keys = Keys.from_config()
    if not keys.aes_key:
        return reply
    crypto = WeChatCrypto(keys.token, keys.aes_key, keys.app_id)
    return crypto.encrypt_message(reply, secrets.token_hex(8), str(int(time.time())))


# --- events and menu keys (called from conversations.receive for kind="event") ---------------------

def answer_event(*, resident, conversation, event: str, key: str) -> list[str]:
    """What the account says to a subscription or a menu click."""
    from app.services import identities

    if event == "subscribe":
        identities.set_wechat_subscribed(resident_id=resident.id, subscribed=True)
        return [WELCOME]
    if event == "unsubscribe":
        identities.set_wechat_subscribed(resident_id=resident.id, subscribed=False)
        return []  # WeChat delivers nothing to someone who left
    handler = MENU.get(key)
    return handler(resident, conversation) if handler else []


def _one_key_help(resident, conversation) -> list[str]:
    try:
        from app.services import help as help_service
    except ImportError:
        help_service = None
    raise_alert = getattr(help_service, "raise_alert", None)
    if raise_alert is not None:
        try:
            raise_alert(resident_id=resident.id, source="wechat_menu")
            return [HELP_RAISED]
        except DomainError as exc:  # e.g. no contact chain yet: a person must step in, not silence
            log.warning("help alert from the menu refused: %s", exc.message)
    _staff_ticket(resident, conversation, subject="一键求助（微信菜单）", priority="urgent", category="help")
    return [HELP_RAISED]


def _my_appointments(resident, conversation) -> list[str]:
    try:
        from app.services import booking
    except ImportError:
        return [NO_APPOINTMENTS]
    appointments = booking.list_appointments(resident_id=resident.id, active_only=True)
    if not appointments:
        return [NO_APPOINTMENTS]
    tz = ZoneInfo(current_app.config.get("TIMEZONE", "Asia/Shanghai"))
    lines = ["您的预约："]
    for n, appt in enumerate(appointments[:5], 1):
        start = appt.slot.start_at.astimezone(tz)
        lines.append(f"{n}. {start:%m月%d日 %H:%M} {appt.department.name} {appt.slot.doctor.name}"
                     f"（就诊人：{appt.patient.name}）")
    lines.append("如需取消，请回复“取消预约”。")
    return ["\n".join(lines)]


def _talk_to_staff(resident, conversation) -> list[str]:
    _staff_ticket(resident, conversation, subject="居民通过菜单要求人工服务", priority="normal", category="handoff")
    return [STAFF_CALLED]


def _staff_ticket(resident, conversation, *, subject: str, priority: str, category: str) -> None:
    from app.services import identities, tickets

    street_id = identities.street_of(resident)
    if street_id is None:
        log.error("no street configured; ticket %r not opened", subject)
        return
    tickets.open_ticket(street_id=street_id, source="resident", subject=subject, priority=priority,
                        category=category, conversation_id=conversation.id, resident_id=resident.id)


MENU = {"ONE_KEY_HELP": _one_key_help, "MY_APPOINTMENTS": _my_appointments, "TALK_TO_STAFF": _talk_to_staff}
