"""WeChat subscribe messages (订阅通知): the grants residents give, and sending one when a grant allows it.

A resident accepts a template in WeChat's popup; WeChat tells the webhook (`subscribe_msg_popup_event`) and
allows the account one message of that template per acceptance. A grant is a count per (openid, template id),
spent by a guarded UPDATE (`remaining > 0`) so two workers never spend one acceptance twice, and given back
when WeChat refuses the message before sending it. Rejecting (in the popup, or later in the settings page:
`subscribe_msg_change_event`) or WeChat reporting a refused send (`subscribe_msg_sent_event`) ends the grant.

Templates are configured by logical key (WECHAT_SUBSCRIBE_TEMPLATES, docs/channels.md): a key not configured
is never sent as a subscribe message, so the caller's text goes by 客服 or SMS instead.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.core import transports
from app.core.config import setting
from app.core.extensions import db
from app.models import SubscribeEvent, SubscribeGrant
from app.models.base import utcnow

log = logging.getLogger(__name__)

POPUP = "subscribe_msg_popup_event"
CHANGE = "subscribe_msg_change_event"
SENT = "subscribe_msg_sent_event"
# The XML element holding each event's <List> entries.
EVENT_LISTS = {POPUP: "SubscribeMsgPopupEvent", CHANGE: "SubscribeMsgChangeEvent", SENT: "SubscribeMsgSentEvent"}
# WeChat's length limits of a keyword's value by its type (the keyword's name without its number).
VALUE_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "number": 32, "letter": 32}


@dataclass(frozen=True)
class Template:
    template_id: str
    keywords: dict[str, str] | None  # WeChat keyword -> our field; None: the fields are named as WeChat's keywords

    def data(self, fields: dict) -> dict:
        """The `data` of a bizsend request: each keyword's value, cut to the length WeChat takes."""
        names = self.keywords or {name: name for name in fields}
        return {keyword: {"value": _fit(keyword, str(fields.get(name, "")))} for keyword, name in names.items()}


def template_for(key: str | None) -> Template | None:
    """The configured template of a logical key ("booking_reminder"); None when not configured."""
    if not key:
        return None
    raw = setting("WECHAT_SUBSCRIBE_TEMPLATES")
    try:
        entry = (json.loads(raw) if raw else {}).get(key)
    except (ValueError, AttributeError):
        log.error("WECHAT_SUBSCRIBE_TEMPLATES is not a JSON object; no subscribe messages are sent")
        return None
    if isinstance(entry, str) and entry:
        return Template(template_id=entry, keywords=None)
    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
        keywords = entry.get("fields")
        return Template(template_id=entry["id"], keywords=dict(keywords) if isinstance(keywords, dict) else None)
    return None


def _fit(keyword: str, value: str) -> str:
    limit = VALUE_LIMITS.get(keyword.rstrip("0123456789"))
    if limit is None or len(value) <= limit:
        return value
    return value[:limit - 1] + "…"


# --- grants ----------------------------------------------------------------------------------------------------------
# Each change commits at once (the session's work so far with it): a spent grant stays spent whatever comes next.

def take_grant(*, openid: str, template_id: str) -> bool:
    """Spend one of the resident's acceptances of this template; False when none is left."""
    taken = db.session.execute(
        update(SubscribeGrant)
        .where(SubscribeGrant.openid == openid, SubscribeGrant.template_id == template_id,
               SubscribeGrant.remaining > 0)
        .values(remaining=SubscribeGrant.remaining - 1, updated_at=utcnow())
    ).rowcount == 1
    db.session.commit()
    return taken


def give_back_grant(*, openid: str, template_id: str) -> None:
    """WeChat refused the message before sending it: the acceptance is still unspent."""
    _add_grants(openid, template_id, 1)
    db.session.commit()


def end_grant(*, openid: str, template_id: str) -> None:
    """The resident rejected the template (or WeChat says so): nothing more of it goes by subscribe message."""
    _end_grant(openid, template_id)
    db.session.commit()


def grants_left(*, openid: str, template_id: str) -> int:
    return db.session.scalar(select(SubscribeGrant.remaining).where(
        SubscribeGrant.openid == openid, SubscribeGrant.template_id == template_id)) or 0


def _end_grant(openid: str, template_id: str) -> None:
    db.session.execute(update(SubscribeGrant)
                       .where(SubscribeGrant.openid == openid, SubscribeGrant.template_id == template_id)
                       .values(remaining=0, updated_at=utcnow()))


def _add_grants(openid: str, template_id: str, count: int) -> None:
    for _ in range(2):  # the insert loses a race only to another insert: the update then finds its row
        added = db.session.execute(
            update(SubscribeGrant)
            .where(SubscribeGrant.openid == openid, SubscribeGrant.template_id == template_id)
            .values(remaining=SubscribeGrant.remaining + count, updated_at=utcnow())
        ).rowcount
        if not added:
            try:
                with db.session.begin_nested():
                    db.session.add(SubscribeGrant(openid=openid, template_id=template_id, remaining=count))
            except IntegrityError:
                continue
        return


# --- WeChat's events ----------------------------------------------------------------------------------------------

def record_event(*, openid: str, event: str, create_time: int, entries: list[dict]) -> bool:
    """Apply one subscribe-message event from the webhook; False for a retry of an event applied before.

    `entries` are the event's <List> records (TemplateId, SubscribeStatusString; ErrorCode for sent events).
    """
    if event not in EVENT_LISTS:
        raise ValueError(f"not a subscribe-message event: {event!r}")
    try:
        with db.session.begin_nested():
            db.session.add(SubscribeEvent(openid=openid, event=event, create_time=create_time))
    except IntegrityError:
        db.session.rollback()
        return False  # WeChat retried (same FromUserName + CreateTime): applied already
    for entry in entries:
        template_id = str(entry.get("TemplateId") or "")[:64]
        if not template_id:
            continue
        status = str(entry.get("SubscribeStatusString") or "").lower()
        if event == POPUP and status == "accept":
            _add_grants(openid, template_id, 1)
        elif event in (POPUP, CHANGE) and status == "reject":
            _end_grant(openid, template_id)
        elif event == SENT and str(entry.get("ErrorCode") or "0") != "0":
            # e.g. 43101: WeChat refused a send the resident had not (or no longer) allowed
            _end_grant(openid, template_id)
    db.session.commit()  # the event and its grants together: a retry finds both or neither
    return True


# --- sending ---------------------------------------------------------------------------------------------------------

def send_if_granted(*, openid: str, template: str | None, fields: dict | None) -> bool:
    """Send as a subscribe message when the template is configured and the resident has an acceptance left.

    False: not sent this way (not configured, no grant, or WeChat refused it), the caller sends by 客服 or SMS.
    A failure worth retrying (network, WeChat busy) gives the grant back and raises for the caller's retry.
    """
    config = template_for(template)
    if config is None or not take_grant(openid=openid, template_id=config.template_id):
        return False
    try:
        transports.get().wechat.send_subscribe(openid, config.template_id, config.data(fields or {}))
    except Exception as exc:  # sorted below by what WeChat said
        if getattr(exc, "no_grant", False):  # 43101: WeChat knows no grant (rejected since, or used elsewhere)
            end_grant(openid=openid, template_id=config.template_id)
            return False
        give_back_grant(openid=openid, template_id=config.template_id)
        if getattr(exc, "errcode", None) is not None and not getattr(exc, "retryable", True):
            # Refused for good (40037 a wrong template id, 47003 a field WeChat rejects): a configuration fault
            # that must not keep residents' messages from going by 客服.
            log.error("subscribe message refused, sending by 客服 instead: %s", exc)
            return False
        raise
    return True
