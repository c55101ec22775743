"""A resident's message in, the answer out, for every channel.

receive() stores the message once however often the channel retries it, then decides who answers, in
this order: a help contact accepting an alert by SMS, staff when the conversation is in human mode, the
rating question of a resolved ticket, and otherwise the bot. The answer goes back in the webhook's own
HTTP response when it is ready within the caller's budget (WeChat's passive reply), else via the outbox.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import current_app
from limits import parse as parse_rate
from redis.exceptions import RedisError
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from app.core import transports
from app.core.config import setting
from app.core.extensions import db, limiter
from app.core.redis_client import get_redis
from app.models import Conversation, OutboundMessage, Resident
from app.models.base import utcnow
from app.services import care, tickets, workorders
from app.services import help as help_service
from app.services.conversations import bot_wait, fast_commit, phone_link, senders, wechat_menu
from app.services.conversations.dedup import DUPLICATE_WAIT, STORED, InboundGuard
from app.services.conversations.late_answers import LATE_ANSWER_GRACE, finish_late, mark_answer_queued
from app.services.conversations.replies import (
    CONVERSATIONS,
    MARK_LATE_ANSWER,
    MARKED_WHEN_STORED,
    MESSAGES,
    RESIDENTS,
    TOUCH_CONVERSATION,
    Outcome,
    Turn,
    answer_of,
    dedup_key,
    deliver,
    replies_of,
)

log = logging.getLogger(__name__)
OUTBOUND = OutboundMessage.__table__

# conversations.last_inbound_at is rewritten only when older than this: one UPDATE fewer per message of a chat.
LAST_INBOUND_PRECISION = timedelta(minutes=10)

HANDED_OVER = "您的消息已转给人工客服，工作人员会尽快回复您。"
SLOW_DOWN = "您发送得太快了，请稍等片刻再发。您的消息我们都已收到。"


class _Duplicate(Exception):
    pass


def receive(*, channel: str, external_id: str, address: str, text: str = "", kind: str = "text",
            budget: float | None = None) -> Outcome:
    """Take one inbound message; exactly one turn per (channel, external_id).

    `budget`: seconds the caller can wait for a passive reply (WeChat); None: no passive reply, the replies go via
    the outbox (SMS), and the bot is waited for up to SMS_BOT_WAIT. An answer later than that is sent when it comes.
    """
    passive = budget is not None
    deadline = time.monotonic() + (budget if passive else setting("SMS_BOT_WAIT"))
    guard = InboundGuard(channel, external_id)
    unclaimed = False  # storing is this delivery's only claim: the first one's is still "running"
    if guard.claim():
        taking_over = False
    elif guard.take_over_failed():
        # The first delivery stored the message, then failed (say, the database dropped): this retry
        # answers it, and only this one, since taking over is a compare-and-set on the guard.
        taking_over = True
    else:
        first = guard.outcome_of_first(wait=min(budget or 0.0, DUPLICATE_WAIT))
        if first is None:
            # The first delivery's process died mid-turn (kill -9, say, while it waited for the bot): this retry
            # answers the message, and only this one (a compare-and-set on the guard). Its turn is stored or not.
            taking_over = True
        elif first.passive_text is not None or not guard.still_running():
            return first
        else:
            # Still "running" and its process alive (or its claim names none, or is too young to tell): storing
            # decides. The unique row lets one delivery through, and a message already stored stays its first
            # delivery's to answer.
            taking_over, unclaimed = False, True
    message = dict(channel=channel, external_id=external_id, address=address, text=text, kind=kind)
    outcome = None
    with fast_commit.connect() as conn:
        try:
            turn = _taken_over_turn(conn, **message) if taking_over else _store(conn, **message)
        except _Duplicate:  # Redis forgot (restart, flush), or a retry stored it first, but the row remembers
            if not unclaimed:
                guard.finish_if_mine(STORED)  # not over a retry's own claim: that one answers
            return Outcome(duplicate=True)
        except BaseException:
            if taking_over:
                guard.finish("failed")  # still unanswered: the next retry tries again
            elif not unclaimed:
                guard.release()  # nothing stored: the channel's retry may try again
            raise
        if unclaimed:
            guard.own()  # stored by this delivery: the turn is this process's, and so is the claim
        if taking_over and _answer_queued(conn, turn):
            # The delivery before queued its answer, then died before saying so: answered once already.
            guard.finish("outbox")
            return Outcome(duplicate=True)
        try:
            replies = _answer_without_bot(turn)
            if replies is not None:
                outcome = deliver(turn, replies, author="system", passive=passive, answer=False, conn=conn)
            else:
                outcome = _bot_turn(turn, deadline=deadline, passive=passive, conn=conn)
            if outcome.needs_flush:
                # Before the guard says the turn is over: a retry must find the message.
                _make_durable(turn, late=outcome.pending is not None)
            if taking_over and outcome.pending is None:
                # The turn taken over may carry the late-answer mark of a delivery that died waiting for the bot:
                # answered now, so hand_over_lost_late_answers must not apologise for it later.
                mark_answer_queued(turn)
        except BaseException:
            # Stored but unanswered: the channel's retry takes the turn over. Not while the bot is still
            # answering it, though: the retry would ask the bot a second time and the resident hear twice.
            if outcome is None or outcome.pending is None:
                guard.finish("failed")
            raise
        finally:
            if outcome is not None and outcome.pending is not None:
                # Only now, so that the late answer's bookkeeping follows the mark _make_durable wrote.
                app = current_app._get_current_object()
                outcome.pending.add_done_callback(lambda done: finish_late(app, turn, done, guard))
    if outcome.pending is None:
        guard.finish(outcome.guard_state, classify=turn.message_id if outcome.classify else None)
    return outcome


def _store(conn: Connection, *, channel: str, external_id: str, address: str, text: str, kind: str) -> Turn:
    """Keep the message (on `conn`, a fast_commit connection: each statement commits by itself)."""
    now = utcnow()
    try:
        sender, message_id = senders.store(
            conn, channel=channel, address=address, external_id=external_id, kind=kind, text=text,
            answer_due=now + LATE_ANSWER_GRACE if channel in MARKED_WHEN_STORED else None)
    except IntegrityError:
        raise _Duplicate from None
    if sender.last_inbound_at is None or now - sender.last_inbound_at > LAST_INBOUND_PRECISION:
        conn.execute(TOUCH_CONVERSATION, {"conversation_id": sender.conversation_id, "now": now})
    if channel == "sms" and sender.sms_opted_out:
        # Writing in again is the resident's START.
        conn.execute(update(RESIDENTS).where(RESIDENTS.c.id == sender.resident_id).values(sms_opted_out=False))
    return Turn(channel=channel, resident_id=sender.resident_id, conversation_id=sender.conversation_id,
                message_id=message_id, bot_sender=sender.bot_sender, address=address, text=text, kind=kind,
                ticket_may_claim=sender.ticket_may_claim)


def _taken_over_turn(conn: Connection, *, channel: str, external_id: str, address: str, text: str,
                     kind: str) -> Turn:
    turn = _stored_turn(conn, channel=channel, external_id=external_id, address=address)
    if turn is None:  # a database crash lost it (its commit did not wait for the disk): store it again
        try:
            turn = _store(conn, channel=channel, external_id=external_id, address=address, text=text, kind=kind)
        except _Duplicate:  # stored a moment ago after all (a delivery that went on without Redis)
            turn = _stored_turn(conn, channel=channel, external_id=external_id, address=address)
    return turn


def _answer_queued(conn: Connection, turn: Turn) -> bool:
    """Whether the turn's first reply is in the outbox (replies.dedup_key), whoever queued it."""
    return conn.execute(select(OUTBOUND.c.id).where(OUTBOUND.c.conversation_id == turn.conversation_id,
                                                   OUTBOUND.c.dedup_key == dedup_key(turn, 0))).first() is not None


def _stored_turn(conn: Connection, *, channel: str, external_id: str, address: str) -> Turn | None:
    """The turn of a message stored by an earlier, failed delivery (None if a database crash lost it)."""
    row = conn.execute(
        select(MESSAGES.c.id, MESSAGES.c.text, MESSAGES.c.kind, CONVERSATIONS.c.id.label("conversation_id"),
               CONVERSATIONS.c.resident_id, CONVERSATIONS.c.bot_sender)
        .join_from(MESSAGES, CONVERSATIONS, CONVERSATIONS.c.id == MESSAGES.c.conversation_id)
        .where(MESSAGES.c.channel == channel, MESSAGES.c.external_id == external_id)
    ).one_or_none()
    if row is None:
        return None
    return Turn(channel=channel, resident_id=row.resident_id, conversation_id=row.conversation_id,
                message_id=row.id, bot_sender=row.bot_sender, address=address, text=row.text, kind=row.kind)


def _answer_without_bot(turn: Turn) -> list[str] | None:
    """Replies decided without the bot, or None when the bot should answer."""
    if turn.kind == "event":
        event, _, key = turn.text.partition(":")
        resident = db.session.get(Resident, turn.resident_id)
        conversation = db.session.get(Conversation, turn.conversation_id)
        return wechat_menu.answer_event(resident=resident, conversation=conversation, event=event, key=key)
    if _over_rate(turn):
        return [SLOW_DOWN] if _first_time(f"linli:slowdown:{turn.channel}:{turn.address}", 60) else []
    if turn.kind not in ("text", "voice"):
        return [wechat_menu.CAPABILITIES]
    if not turn.text:
        return [wechat_menu.ASK_TO_TYPE] if turn.kind == "voice" else []
    if turn.channel == "wechat":
        linked = phone_link.link_reply(turn)
        if linked is not None:
            return linked
    if turn.channel == "sms":
        # Help first: a "1" from a phone a help request is waiting on answers it, even from an enrolled resident.
        if help_service.accept_by_sms(from_phone=turn.address, text=turn.text):
            return []  # a contact took a help alert; the help service confirms it to them
        checked_in = care.check_in_by_sms(from_phone=turn.address, text=turn.text)
        if checked_in:
            return [checked_in]  # an enrolled resident's 平安打卡 by SMS (a bare "好" only answering a check-in call)
    # A work order's follow-up (回访) answer, before a resolved ticket would take "未解决" as a new message and reopen.
    followed_up = workorders.answer_followup_by_message(conversation_id=turn.conversation_id, text=turn.text)
    if followed_up:
        return [followed_up]
    if not turn.ticket_may_claim:
        return None
    ticket = tickets.route_resident_message(conversation_id=turn.conversation_id, message_id=turn.message_id)
    if ticket is not None:
        if ticket.reopened_count:  # it may have been reopened just now: a done work order goes back to its department
            workorders.reopen_with_ticket(ticket_id=ticket.id, reason="居民再次留言，工单重新打开")
        # Staff answer from now on; the resident hears once that a person has the conversation.
        return [HANDED_OVER] if _first_time(f"linli:handover-notice:{ticket.id}", 30 * 86400) else []
    thanks = tickets.capture_csat(conversation_id=turn.conversation_id, text=turn.text)
    if thanks:
        return [thanks]
    return None


def _bot_turn(turn: Turn, *, deadline: float, passive: bool, conn: Connection) -> Outcome:
    timeout = setting("BOT_TIMEOUT")
    exchange = transports.get().bot.start(turn.bot_sender, turn.text, timeout)
    wait = bot_wait.allowed(deadline - time.monotonic())
    if not exchange.ready_within(wait):
        if wait > 0:
            bot_wait.missed()
        # Too late for this request: answer now (WeChat: "success"), and let a bot thread wait for the answer and
        # queue it in the outbox (WeChat: the 客服 API).
        return Outcome(deferred=True, pending=_executor().submit(exchange.result))
    # The answer is arriving: read here. One that stalls halfway is the bot failing, and must not hold the webhook
    # past the budget (WeChat gives up a second after it, hence the small floor).
    answer = answer_of(lambda: exchange.result(within=max(0.1, deadline - time.monotonic())))
    return deliver(turn, *replies_of(turn, *answer), author="bot", passive=passive, conn=conn)


def _make_durable(turn: Turn, *, late: bool) -> None:
    """Wait until the stored message is on disk: a durable commit flushes the log up to itself. `late`: the bot
    is still answering, so the message is marked until its answer is queued (hand_over_lost_late_answers)."""
    if late:
        db.session.execute(MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": utcnow() + LATE_ANSWER_GRACE})
    elif turn.channel in MARKED_WHEN_STORED:
        # Answered (with nothing to send, say for a message to staff): the mark it was stored with goes, and
        # this write is the one whose commit waits for the disk.
        db.session.execute(MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": None})
    elif db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(TOUCH_CONVERSATION, {"conversation_id": turn.conversation_id, "now": utcnow()})
    else:
        return  # SQLite's commits are all durable
    db.session.commit()


def _over_rate(turn: Turn) -> bool:
    """Per-sender flood guard; the first messages of a window always pass, and Redis trouble lets all pass."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return False
    rate = parse_rate(setting("SENDER_RATE_LIMIT"))
    try:
        return not limiter.limiter.hit(rate, "linli-sender", turn.channel, turn.address)
    except Exception as exc:
        log.warning("rate limiter unavailable: %s", exc)
        return False


def _first_time(key: str, ttl: int) -> bool:
    try:
        return bool(get_redis().set(key, 1, nx=True, ex=ttl))
    except RedisError:
        return False


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Threads that wait on the bot, so a webhook can stop waiting at its budget without losing the answer."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=setting("BOT_THREADS"),
                                       thread_name_prefix="bot-turn")
        return _pool
