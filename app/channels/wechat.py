"""The WeChat official account's server URL: GET for WeChat's URL check, POST for every message and event."""
from __future__ import annotations

import json

from apiflask import APIBlueprint
from flask import Response, request

from app.channels import wechat_envelope as envelope
from app.core.config import setting
from app.services import conversations, outbox

# Vendor webhooks speak XML and form posts, not JSON: kept out of the OpenAPI document.
bp = APIBlueprint("wechat", __name__, enable_openapi=False)

ANSWERED_EVENTS = ("subscribe", "unsubscribe", "click")
# Subscribe-message grants and their changes (订阅通知), by the element holding their <List> records.
SUBSCRIBE_MSG_EVENTS = {"subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
                        "subscribe_msg_change_event": "SubscribeMsgChangeEvent",
                        "subscribe_msg_sent_event": "SubscribeMsgSentEvent"}


@bp.get("/wechat")
def verify_url():
    try:
        echo = envelope.verify_url(query=request.args.to_dict())
    except envelope.RejectedRequest as exc:
        return Response(exc.reason, status=exc.status, mimetype="text/plain")
    return Response(echo, mimetype="text/plain")


@bp.post("/wechat")
def receive():
    if (request.content_length or 0) > envelope.MAX_BODY:
        return Response("body too large", status=413, mimetype="text/plain")
    body = request.stream.read(envelope.MAX_BODY + 1)  # chunked bodies are capped too
    try:
        answer = _answer(query=request.args.to_dict(), body=body, budget=setting("WECHAT_REPLY_BUDGET"))
    except envelope.RejectedRequest as exc:
        return Response(exc.reason, status=exc.status, mimetype="text/plain")
    mimetype = "text/plain" if answer == envelope.SUCCESS else "application/xml"
    return Response(answer, mimetype=mimetype)


def _answer(*, query: dict, body: bytes, budget: float) -> str:
    """The HTTP answer to one webhook POST: a passive reply, or "success" when the reply goes by 客服 API."""
    fields = envelope.open_envelope(query=query, body=body)
    text = _receive(fields, budget=budget)
    return envelope.passive_reply(fields, text) if text else envelope.SUCCESS


def _receive(fields: dict[str, str], *, budget: float) -> str | None:
    """Hand one message or event to the conversations domain; the passive reply, if any."""
    openid = fields["FromUserName"]
    msg_type = fields["MsgType"].lower()
    if msg_type == "event":
        event = fields.get("Event", "").lower()
        if event in SUBSCRIBE_MSG_EVENTS:
            _record_grants(openid, event, fields)
            return None
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


def _record_grants(openid: str, event: str, fields: dict[str, str]) -> None:
    try:
        entries = json.loads(fields.get(SUBSCRIBE_MSG_EVENTS[event]) or "[]")
    except ValueError:
        raise envelope.RejectedRequest(400, "malformed subscribe event") from None
    if not isinstance(entries, list):
        raise envelope.RejectedRequest(400, "malformed subscribe event")
    # Events carry no MsgId; WeChat's retries of one event repeat FromUserName + CreateTime.
    outbox.record_subscribe_event(openid=openid, event=event, create_time=int(fields["CreateTime"]),
                                  entries=[entry for entry in entries if isinstance(entry, dict)])
