"""Messages to people without a conversation of their own (a resident's family contacts, staff), sent at once.

The same choice as delivery makes for a resident's row: a WeChat subscribe message when that openid granted the
template, else a 客服 message (WeChat refuses it outside the 48-hour window, 45015, or beyond its count, 45047),
else SMS (Twilio or Aliyun, by the number). Nothing is queued: the caller (an alert being escalated) wants to know now which way it went, and
retries by its own schedule.
"""
from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.services.outbox import subscriptions
from integrations.telephony import free_text

log = logging.getLogger(__name__)

DEDUP_SECONDS = 2 * 24 * 3600
SENDING = "sending"


def notify_contact(*, openid: str | None, phone: str | None, template: str, fields: dict, body: str,
                   dedup_key: str) -> str:
    """Send one notice; the route it took: "subscribe", "kefu", "sms", or "none" (no way worked). Never raises.

    A second call with the same dedup_key sends nothing and answers the first one's route (for two days).
    Spending a grant commits the session: call it after committing your own change.
    """
    key = f"linli:notify-contact:{dedup_key}"
    earlier = _first_claim(key)
    if earlier is not None:
        return earlier
    try:
        route = _send(openid=openid, phone=phone, template=template, fields=fields, body=body)
    except Exception:  # the caller is escalating an alert: a bug here must not stop it
        db.session.rollback()
        log.exception("notify_contact failed", extra={"dedup_key": dedup_key})
        route = "none"
    _remember(key, route)
    return route


def _send(*, openid: str | None, phone: str | None, template: str, fields: dict, body: str) -> str:
    wechat = transports.get().wechat
    if openid:
        try:
            if subscriptions.send_if_granted(openid=openid, template=template, fields=fields):
                return "subscribe"
        except Exception as exc:  # a failure worth a retry later; 客服 or SMS now is better than nothing
            log.warning("subscribe message to a contact failed: %s", exc)
        try:
            wechat.send_text(openid, body)
            return "kefu"
        except Exception as exc:  # 45015 outside the window, 45047 over the count, WeChat down: SMS next
            log.info("客服 message to a contact not sent: %s", exc)
    if phone:
        try:
            # Twilio or Aliyun by the number; Aliyun sends the words as its generic template's ${content}.
            transports.telephony_for(phone).send_text(free_text(phone, body))
            return "sms"
        except Exception as exc:
            log.warning("SMS to a contact not sent: %s", exc)
    return "none"


def _first_claim(key: str) -> str | None:
    """None when this call is the first with its key; else the route the first one took."""
    try:
        redis = get_redis()
        if redis.set(key, SENDING, nx=True, ex=DEDUP_SECONDS):
            return None
        value = redis.get(key)
    except RedisError as exc:  # without Redis a notice may go twice; better than not at all
        log.warning("notify_contact dedup skipped, redis unavailable: %s", type(exc).__name__)
        return None
    route = value.decode() if value else SENDING
    return "none" if route == SENDING else route  # still being sent by the first call


def _remember(key: str, route: str) -> None:
    try:
        if route == "none":
            get_redis().delete(key)  # nothing went out: a later call may try again
        else:
            get_redis().set(key, route, ex=DEDUP_SECONDS)
    except RedisError:
        pass
