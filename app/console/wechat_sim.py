"""What the simulator needs to play WeChat's servers: signed (optionally encrypted) XML posted to /wechat.

It goes through the real webhook, signature check included, so what a newcomer sees in the simulator
is what a resident on WeChat would get.
"""
from __future__ import annotations

import re
import secrets
import time
import xml.etree.ElementTree as ET

from flask import current_app
from sqlalchemy import or_, select
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.models import ChannelIdentity, Community, Conversation, OutboundMessage, Resident

OPENID = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
ACCOUNT_ID = "gh_linli_simulator"  # the official account's own id in ToUserName
SENDER_LABELS = {"staff_reply": "工作人员", "csat_request": "满意度评价"}


def _cdata(text: str) -> str:
    # "]]>" inside a CDATA section would end it early; split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_message_xml(*, openid: str, text: str, create_time: int, msg_id: int) -> str:
    return (f"<xml><ToUserName>{_cdata(ACCOUNT_ID)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(text)}</Content><MsgId>{msg_id}</MsgId></xml>")


def _signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _crypto() -> WeChatCrypto | None:
    cfg = current_app.config
    if not cfg.get("WECHAT_AES_KEY"):
        return None
    return WeChatCrypto(cfg["WECHAT_TOKEN"], cfg["WECHAT_AES_KEY"], cfg.get("WECHAT_APP_ID") or ACCOUNT_ID)


def check_openid(openid: str) -> str:
    openid = (openid or "").strip()
    if not OPENID.match(openid):
        raise ValidationFailed("openid 只能包含字母、数字、下划线，6-40位")
    return openid


def send_as_resident(*, openid: str, text: str, street_id: int) -> dict:
    """POST one text message to /wechat as WeChat would; the passive reply's text (None for "success")."""
    openid = check_openid(openid)
    text = (text or "").strip()
    if not text or len(text) > 600:
        raise ValidationFailed("消息不能为空，最多600字")
    _check_street(openid, street_id)
    token = current_app.config["WECHAT_TOKEN"]
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    # MsgIds are 64-bit in WeChat; time plus randomness keeps ours unique across restarts.
    msg_id = int(time.time() * 1000) * 1000 + secrets.randbelow(1000)
    body = text_message_xml(openid=openid, text=text, create_time=int(timestamp), msg_id=msg_id)
    query = {"signature": _signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "openid": openid}
    crypto = _crypto()
    if crypto is not None:
        body = crypto.encrypt_message(body, nonce, timestamp)
        encrypted = ET.fromstring(body).findtext("Encrypt")
        query.update(encrypt_type="aes", msg_signature=_signature(token, timestamp, nonce, encrypted))
    # Release this request's database transaction first: on SQLite the webhook's writes would wait on it.
    db.session.commit()
    # In-process, so the simulator works without PUBLIC_BASE_URL being reachable from the server.
    response = current_app.test_client().post("/wechat", query_string=query, data=body.encode("utf-8"),
                                              content_type="text/xml")
    return {"status": response.status_code, "reply": _passive_text(response.get_data(as_text=True), crypto)}


def _passive_text(body: str, crypto: WeChatCrypto | None) -> str | None:
    body = (body or "").strip()
    if not body or body == "success" or not body.startswith("<"):
        return None
    root = ET.fromstring(body)
    if root.find("Encrypt") is not None and crypto is not None:
        root = ET.fromstring(crypto.decrypt_message(body, root.findtext("MsgSignature"), root.findtext("TimeStamp"),
                                                    root.findtext("Nonce")))
    kind = root.findtext("MsgType")
    if kind == "text":
        return root.findtext("Content")
    if kind == "news":
        return "\n".join(a.findtext("Title") or "" for a in root.iter("item"))
    return f"[{kind}]"


def _check_street(openid: str, street_id: int) -> None:
    """An openid of a resident of another street is not for this staff member to play."""
    other = db.session.scalar(
        select(ChannelIdentity.id).join(Resident, Resident.id == ChannelIdentity.resident_id)
        .join(Community, Community.id == Resident.community_id)
        .where(ChannelIdentity.channel == "wechat", ChannelIdentity.external_id == openid,
               Community.street_id != street_id)
    )
    if other:
        raise NotFound("没有这位居民")


def demo_openids(*, street_id: int) -> list[dict]:
    rows = db.session.execute(
        select(ChannelIdentity.external_id, Resident.name)
        .join(Resident, Resident.id == ChannelIdentity.resident_id)
        .outerjoin(Community, Community.id == Resident.community_id)
        .where(ChannelIdentity.channel == "wechat",
               or_(Community.street_id == street_id, Resident.community_id.is_(None)))
        .order_by(ChannelIdentity.id).limit(50)
    ).all()
    return [{"openid": r.external_id, "name": r.name} for r in rows]


def outbox_feed(*, openid: str, street_id: int, after: int = 0) -> list[dict]:
    """Messages queued to this openid after outbox id `after`: 客服 replies, staff replies, rating requests."""
    openid = check_openid(openid)
    _check_street(openid, street_id)
    rows = db.session.scalars(
        select(OutboundMessage).join(Conversation, Conversation.id == OutboundMessage.conversation_id)
        .where(Conversation.channel == "wechat", Conversation.address == openid, OutboundMessage.id > after)
        .order_by(OutboundMessage.id).limit(100)
    ).all()
    return [{"id": r.id, "body": r.body, "kind": r.kind, "from": SENDER_LABELS.get(r.kind, "客服消息"),
             "status": r.status, "at": r.created_at.isoformat()} for r in rows]
