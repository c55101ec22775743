"""Sending outbox rows through WeChat (subscribe message or 客服 API) or SMS (Twilio or Aliyun, by the number).

A conversation's rows go out in sequence order, each claimed by a guarded UPDATE so two workers never
send it twice. A WeChat row with a subscribe template goes as a subscribe message when the resident has an
unspent grant of it, else as 客服 text; when 客服 refuses it (outside the 48-hour window, 45015; beyond the few
messages WeChat takes after a menu tap or a subscribe event, 45047) or the resident unfollowed the account, it goes by
SMS to the resident's phone instead. The way it went is recorded on the row (`route`), and for SMS who carried it
(`provider`). Failures retry with exponential backoff; a row failed for good, or with no way left (no phone to fall
back to), flags its conversation and puts it on a ticket for staff; one to a number that opted out of SMS is only
marked `undeliverable`.

Delivery is at least once: a worker killed between the provider's answer and the commit leaves its row
"sending"; after the lease the sweeper sends it again (neither WeChat, Twilio nor Aliyun takes an idempotency
key). A row that Aliyun sends as several SMS (long words, sms_templates.py) is sent whole again after a failure
of a later part.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.core import tasks, transports
from app.core.config import setting
from app.core.extensions import db
from app.models import Conversation, OutboundMessage, Resident
from app.models.base import utcnow
from app.services import outbox, residents, tickets
from app.services.delivery import sms_templates, sms_text

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
UNFINISHED = ("pending", "sending")


class Undeliverable(Exception):
    """This row can never reach the resident on its channel (the number opted out of SMS)."""


class NotFollowing(Exception):
    """The resident unfollowed the official account: WeChat carries nothing to them, not even a subscribe message."""


def deliver(*, outbound_id: int, now: datetime | None = None) -> str:
    """Send one row if it is due and first in its conversation's line; its status afterwards."""
    now = now or utcnow()
    row = db.session.get(OutboundMessage, outbound_id)
    if row is None:
        return "missing"
    if row.status != "pending":
        return row.status
    if row.next_attempt_at > now + timedelta(seconds=1):
        return "not_due"  # an early duplicate job; the one queued for the retry time sends it
    if _earlier_unfinished(row):
        return "waiting"  # the earlier row's delivery kicks this one when it is done
    if not _claim(row, now):
        return "claimed_elsewhere"
    try:
        external_id, route = _send(row)
    except Exception as exc:  # each kind of failure is sorted out below
        return _after_failure(row, exc, now=utcnow())
    row.status = "sent"
    row.sent_at = utcnow()
    row.route = route
    row.external_id = external_id  # last_error stays: the history of a retried or rerouted row
    db.session.commit()
    _kick_next(row.conversation_id)
    return "sent"


def _earlier_unfinished(row: OutboundMessage) -> bool:
    return db.session.scalar(
        select(OutboundMessage.id).where(OutboundMessage.conversation_id == row.conversation_id,
                                         OutboundMessage.sequence < row.sequence,
                                         OutboundMessage.status.in_(UNFINISHED)).limit(1)
    ) is not None


def _claim(row: OutboundMessage, now: datetime) -> bool:
    """pending -> sending as a compare-and-set; the lease lets the sweeper recover a dead worker's row."""
    lease = timedelta(seconds=setting("OUTBOX_SEND_LEASE_SECONDS"))
    won = db.session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == row.id, OutboundMessage.status == "pending",
               OutboundMessage.next_attempt_at <= now + timedelta(seconds=1))
        .values(status="sending", attempts=OutboundMessage.attempts + 1, next_attempt_at=now + lease)
    ).rowcount
    db.session.commit()
    if won:
        db.session.refresh(row)
    return bool(won)


def _send(row: OutboundMessage) -> tuple[str | None, str]:
    """Send the row one way; (the provider's id, the route taken)."""
    resident = _resident(row)
    if row.channel == "wechat":
        if not resident.wechat_subscribed:
            raise NotFollowing("the resident unfollowed the official account")
        # The grant is spent (and committed) before the send, so two workers never spend it twice.
        if row.template and outbox.send_subscribe_if_granted(openid=row.to_address, template=row.template,
                                                             fields=row.template_fields):
            return None, "subscribe"
        transports.get().wechat.send_text(row.to_address, row.body)
        return None, "kefu"
    if resident.sms_opted_out:
        raise Undeliverable("the number opted out of SMS (21610)")
    # Twilio or Aliyun, by the number (TELEPHONY_PROVIDER): Twilio's China SMS is one-way and template-bound.
    provider = transports.telephony_for(row.to_address)
    row.provider = provider.name  # committed with the outcome, sent or failed
    callback = setting("PUBLIC_BASE_URL").rstrip("/") + "/sms/status"
    return provider.send_text(sms_templates.text_message(row, status_callback=callback)), "sms"


def _resident(row: OutboundMessage) -> Resident:
    return db.session.get(Conversation, row.conversation_id).resident


def _after_failure(row: OutboundMessage, exc: Exception, *, now: datetime) -> str:
    error = f"{type(exc).__name__}: {exc}"[:1000]
    if isinstance(exc, Undeliverable):
        return _finish(row, "undeliverable", error)
    if isinstance(exc, NotFollowing) or getattr(exc, "kefu_closed", False):
        # A subscribe message was tried first when the resident granted one (_send): SMS is the way left.
        return _reroute_to_sms(row, error, now=now)
    if getattr(exc, "opted_out", False):
        _resident(row).sms_opted_out = True
        return _finish(row, "undeliverable", error)
    # Errors the integrations do not classify (a bug, an odd network failure) are worth another try.
    if getattr(exc, "retryable", True) and row.attempts < MAX_ATTEMPTS:
        delay = _backoff(row.attempts)
        row.status = "pending"
        row.last_error = error
        row.next_attempt_at = now + delay
        db.session.commit()
        tasks.later("delivery.deliver", outbound_id=row.id, delay=delay, job_id=f"deliver-{row.id}-{row.attempts}")
        return "pending"
    return _give_up(row, error)


def _backoff(attempts: int) -> timedelta:
    base = setting("OUTBOX_RETRY_BASE_SECONDS")
    seconds = min(base * 2 ** (attempts - 1), 3600)
    return timedelta(seconds=seconds * random.uniform(1.0, 1.2))  # jitter: retries of a burst spread out


def _reroute_to_sms(row: OutboundMessage, error: str, *, now: datetime) -> str:
    """WeChat cannot carry the row (客服 refused, or the resident unfollowed): the same row goes to the resident's
    phone, keeping its place in line."""
    resident = _resident(row)
    if not resident.phone or resident.sms_opted_out:
        return _undeliverable(row, error + " (no phone to fall back to)")
    row.channel = "sms"
    row.to_address = resident.phone
    # One SMS of at most 5 segments; Twilio splits it and phones join it again.
    row.body = sms_text.shorten(row.body)
    row.status = "pending"
    row.next_attempt_at = now
    row.last_error = error + " -> rerouted to SMS"
    db.session.commit()
    outbox.dispatch(outbound_ids=[row.id])
    return "rerouted"


def _finish(row: OutboundMessage, status: str, error: str) -> str:
    """The resident's own choice (an SMS opt-out, 21610): marked, shown in the console, no ticket."""
    row.status = status
    row.last_error = error
    db.session.commit()
    _kick_next(row.conversation_id)
    return status


def _give_up(row: OutboundMessage, error: str) -> str:
    """Failed for good: the conversation is flagged and its ticket (opened if need be) records why."""
    return _tell_staff(row, "failed", error)


def _undeliverable(row: OutboundMessage, error: str) -> str:
    """WeChat cannot carry it and there is no phone to fall back to: as for a failure, a person is told (an offer or
    a help update must never lapse unseen)."""
    return _tell_staff(row, "undeliverable", error)


def _tell_staff(row: OutboundMessage, status: str, error: str) -> str:
    row.status = status
    row.last_error = error
    conversation = db.session.get(Conversation, row.conversation_id)
    conversation.needs_attention = True
    db.session.commit()
    street_id = residents.street_of(conversation.resident)
    if street_id is not None:
        ticket = tickets.open_ticket(street_id=street_id, source="delivery_failure",
                                     subject=f"消息未能送达：{row.body[:40]}", conversation_id=conversation.id,
                                     resident_id=conversation.resident_id, body=row.body)
        tickets.add_event(ticket_id=ticket.id, kind="delivery_failed", body=error,
                          data={"outbound_id": row.id, "channel": row.channel, "attempts": row.attempts,
                                "status": status})
    else:
        log.error("outbox %s %s and no street exists for a ticket: %s", row.id, status, error)
    _kick_next(row.conversation_id)
    return status


def _kick_next(conversation_id: int) -> None:
    next_id = db.session.scalar(
        select(OutboundMessage.id).where(OutboundMessage.conversation_id == conversation_id,
                                         OutboundMessage.status == "pending")
        .order_by(OutboundMessage.sequence).limit(1)
    )
    if next_id is not None:
        outbox.dispatch(outbound_ids=[next_id])


def record_status(*, external_id: str, status: str, error_code: str | None = None) -> str | None:
    """A Twilio status callback: delivered, or failed/undelivered (21610: the number opted out)."""
    row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.external_id == external_id,
                                                          OutboundMessage.channel == "sms"))
    if row is None:
        return None
    if status == "delivered" and row.status in ("sending", "sent"):
        row.status = "delivered"
        db.session.commit()
    elif status in ("failed", "undelivered") and row.status in ("sending", "sent", "delivered"):
        error = f"twilio status {status}, error {error_code or '-'}"
        if error_code == "21610":
            _resident(row).sms_opted_out = True
            _finish(row, "undeliverable", error)
        else:
            _give_up(row, error)
    return row.status


def sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Re-queue rows whose job was lost: pending past their time, or "sending" past the lease (dead worker)."""
    now = now or utcnow()
    recovered = list(db.session.scalars(
        update(OutboundMessage)
        .where(OutboundMessage.status == "sending", OutboundMessage.next_attempt_at < now)
        .values(status="pending", next_attempt_at=now).returning(OutboundMessage.id)
    ))
    db.session.commit()
    grace = timedelta(seconds=setting("OUTBOX_SWEEP_GRACE_SECONDS"))
    overdue = list(db.session.scalars(
        select(OutboundMessage.id).where(OutboundMessage.status == "pending",
                                         OutboundMessage.next_attempt_at <= now - grace)
        .order_by(OutboundMessage.conversation_id, OutboundMessage.sequence).limit(limit)
    ))
    ids = sorted(set(recovered) | set(overdue))
    outbox.dispatch(outbound_ids=ids)
    return len(ids)
