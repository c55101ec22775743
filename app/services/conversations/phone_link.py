"""Linking a phone to a WeChat resident from the chat: "绑定手机 <number>", then the six-digit code.

The same path as the app's (residents.request_phone_link / confirm_phone_link), with the same limits; the chat's
client is its openid. A phone that already has an account is merged only on "合并 <code>".
"""
from __future__ import annotations

import logging
import re

from app.core.errors import DomainError
from app.services import residents
from app.services.conversations.replies import Turn

log = logging.getLogger(__name__)

LINK_CODE_SENT = "验证码已发送到 {masked}，请在5分钟内直接回复6位验证码完成绑定。"
LINKED = "绑定成功！今后您在微信和短信中的预约、工单和紧急联系人都是同一份。"
LINK_SMS_FAILED = "验证码短信发送失败，请稍后再试。"

_LINK_REQUEST = re.compile(r"^\s*绑定手机号?\s*[:：]?\s*(\+?[\d\s\-]{8,20})\s*$")
_LINK_CODE = re.compile(r"^\s*(合并)?\s*(\d{6})\s*$")


def link_reply(turn: Turn) -> list[str] | None:
    """The reply to a linking message, or None when the message is not about linking."""
    client = f"{turn.channel}:{turn.address}"
    request = _LINK_REQUEST.match(turn.text)
    if request:
        try:
            phone = residents.request_phone_link(resident_id=turn.resident_id, phone=request.group(1), client=client)
        except DomainError as exc:
            return [exc.message]
        except Exception as exc:  # the SMS provider refused or is down
            log.warning("link code SMS failed: %s", type(exc).__name__)
            return [LINK_SMS_FAILED]
        return [LINK_CODE_SENT.format(masked=phone[:-8] + "****" + phone[-4:])]
    code = _LINK_CODE.match(turn.text)
    if code and residents.pending_link(resident_id=turn.resident_id) is not None:
        try:
            residents.confirm_phone_link(resident_id=turn.resident_id, code=code.group(2), client=client,
                                         merge=code.group(1) is not None)
        except DomainError as exc:
            return [exc.message]
        return [LINKED]
    return None
