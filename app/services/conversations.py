"""A resident's message in, the answer out, for every channel.

receive() stores the message once however often the channel retries it, then decides who answers, in
this order: a help contact accepting an alert by SMS, staff when the conversation is in human mode, the
rating question of a resolved ticket, and otherwise the bot. The answer goes back in the webhook's own
HTTP response when it is ready within the caller's budget (WeChat's passive reply), else via the outbox.
"""
from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from limits import parse as parse_rate
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app import jobs
from app.errors import DomainError
from app.extensions import db, limiter
from app.models import Conversation, Message, Resident
from app.models.base import utcnow
from app.redis_client import get_redis
from app.services import (
    bot_insights, bot_wait, identities, inbound_db, inbound_sender, outbox, sms_text, tickets, transports,
)

log = logging.getLogger(__name__)

DEDUP_TTL = 600  # seconds; WeChat retries within 15 s, Twilio within minutes
DUPLICATE_WAIT = 3.0  # how long a retried webhook waits for the first delivery's passive reply
PASSIVE_MAX_BYTES = 2000  # WeChat cuts a passive text reply at about 2048 bytes
# conversations.last_inbound_at is rewritten only when older than this: one UPDATE fewer per message of a chat.
LAST_INBOUND_PRECISION = timedelta(minutes=10)
LATE_RETRY = [5, 10, 20, 40, 80, 160]  # seconds between tries to queue a late answer while the database is down
# When a late answer not queued by then counts as lost (a process died): the bot's timeout and LATE_RETRY fit in it.
LATE_ANSWER_GRACE = timedelta(minutes=10)
# How long a late answer waiting in Redis for the database is tried again (app.jobs.conversations).
LATE_REPLY_KEPT = timedelta(days=1)

APOLOGY = "抱歉，智能助手暂时无法回答。您的留言已转给工作人员，我们会尽快回复您。"
HANDED_OVER = "您的消息已转给人工客服，工作人员会尽快回复您。"
SLOW_DOWN = "您发送得太快了，请稍等片刻再发。您的消息我们都已收到。"
LINK_CODE_SENT = "验证码已发送到 {masked}，请在5分钟内直接回复6位验证码完成绑定。"
LINKED = "绑定成功！今后您在微信和短信中的预约、工单和紧急联系人都是同一份。"
LINK_SMS_FAILED = "验证码短信发送失败，请稍后再试。"

_LINK_REQUEST = re.compile(r"^\s*绑定手机号?\s*[:：]?\s*(\+?[\d\s\-]{8,20})\s*$")
_LINK_CODE = re.compile(r"^\s*(\d{6})\s*$")


@dataclass
class Outcome:
    """What the webhook answers: `passive_text` in its HTTP response, or nothing (replies go via the outbox)."""

    passive_text: str | None = None
    duplicate: bool = False
    deferred: bool = False
    # For receive() only: how the inbound guard ends, and whether the stored message still needs a durable
    # commit before the channel hears "received" (see inbound_db).
    guard_state: str = "done"
    needs_flush: bool = True
    classify: bool = False  # the bot answered the message: queue it for intent recording
    # The bot's answer when it came after the caller's budget: receive() hands it to _finish_late.
    pending: Future | None = None


@dataclass(frozen=True)
class Turn:
    channel: str
    resident_id: int
    conversation_id: int
    message_id: int
    bot_sender: str
    address: str
    text: str
    kind: str
    ticket_may_claim: bool = True


class _Duplicate(Exception):
    pass


def receive(*, channel: str, external_id: str, address: str, text: str = "", kind: str = "text",
            budget: float | None = None) -> Outcome:
    """Take one inbound message; exactly one turn per (channel, external_id).

    `budget`: seconds the caller can wait for a passive reply (WeChat); None: no passive reply, the replies go via
    the outbox (SMS), and the bot is waited for up to SMS_BOT_WAIT. An answer later than that is sent when it comes.
    """
    passive = budget is not None
    deadline = time.monotonic() + (budget if passive else float(current_app.config.get("SMS_BOT_WAIT", 4.0)))
    guard = _Guard(channel, external_id)
    if guard.claim():
        taking_over = False
    elif guard.take_over_failed():
        # The first delivery stored the message, then failed (say, the database dropped): this retry
        # answers it, and only this one, since taking over is a compare-and-set on the guard.
        taking_over = True
    else:
        return guard.outcome_of_first(wait=min(budget or 0.0, DUPLICATE_WAIT))
    message = dict(channel=channel, external_id=external_id, address=address, text=text, kind=kind)
    outcome = None
    with inbound_db.connect() as conn:
        try:
            turn = _taken_over_turn(conn, **message) if taking_over else _store(conn, **message)
        except _Duplicate:  # Redis forgot (restart, flush) but the row remembers
            guard.finish("done")
            return Outcome(duplicate=True)
        except BaseException:
            if taking_over:
                guard.finish("failed")  # still unanswered: the next retry tries again
            else:
                guard.release()  # nothing stored: the channel's retry may try again
            raise
        try:
            replies = _answer_without_bot(turn)
            if replies is not None:
                outcome = _deliver(turn, replies, author="system", passive=passive, answer=False, conn=conn)
            else:
                outcome = _bot_turn(turn, deadline=deadline, passive=passive, conn=conn)
            if outcome.needs_flush:
                # Before the guard says the turn is over: a retry must find the message.
                _make_durable(turn, late=outcome.pending is not None)
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
                outcome.pending.add_done_callback(lambda done: _finish_late(app, turn, done, guard))
    if outcome.pending is None:
        guard.finish(outcome.guard_state, classify=turn.message_id if outcome.classify else None)
    return outcome


# Plain table statements: the ORM's unit of work costs several times more CPU per row on the webhook's path.
_messages, _conversations, _residents = Message.__table__, Conversation.__table__, Resident.__table__
_INSERT_MESSAGES = insert(_messages)
_TOUCH_CONVERSATION = (update(_conversations).where(_conversations.c.id == bindparam("conversation_id"))
                       .values(last_inbound_at=bindparam("now")))
_MARK_LATE_ANSWER = (update(_messages).where(_messages.c.id == bindparam("message_id"))
                     .values(late_answer_due_at=bindparam("due")))


def _store(conn: Connection, *, channel: str, external_id: str, address: str, text: str, kind: str) -> Turn:
    """Keep the message (on `conn`, an inbound_db connection: each statement commits by itself)."""
    try:
        sender, message_id = inbound_sender.store(conn, channel=channel, address=address, external_id=external_id,
                                                  kind=kind, text=text)
    except IntegrityError:
        raise _Duplicate from None
    now = utcnow()
    if sender.last_inbound_at is None or now - sender.last_inbound_at > LAST_INBOUND_PRECISION:
        conn.execute(_TOUCH_CONVERSATION, {"conversation_id": sender.conversation_id, "now": now})
    if channel == "sms" and sender.sms_opted_out:
        # Writing in again is the resident's START.
        conn.execute(update(_residents).where(_residents.c.id == sender.resident_id).values(sms_opted_out=False))
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


def _stored_turn(conn: Connection, *, channel: str, external_id: str, address: str) -> Turn | None:
    """The turn of a message stored by an earlier, failed delivery (None if a database crash lost it)."""
    row = conn.execute(
        select(_messages.c.id, _messages.c.text, _messages.c.kind, _conversations.c.id.label("conversation_id"),
               _conversations.c.resident_id, _conversations.c.bot_sender)
        .join_from(_messages, _conversations, _conversations.c.id == _messages.c.conversation_id)
        .where(_messages.c.channel == channel, _messages.c.external_id == external_id)
    ).one_or_none()
    if row is None:
        return None
    return Turn(channel=channel, resident_id=row.resident_id, conversation_id=row.conversation_id,
                message_id=row.id, bot_sender=row.bot_sender, address=address, text=row.text, kind=row.kind)


def _answer_without_bot(turn: Turn) -> list[str] | None:
    """Replies decided without the bot, or None when the bot should answer."""
    from app.services import wechat_inbound

    if turn.kind == "event":
        event, _, key = turn.text.partition(":")
        resident = db.session.get(Resident, turn.resident_id)
        conversation = db.session.get(Conversation, turn.conversation_id)
        return wechat_inbound.answer_event(resident=resident, conversation=conversation, event=event, key=key)
    if _over_rate(turn):
        return [SLOW_DOWN] if _first_time(f"linli:slowdown:{turn.channel}:{turn.address}", 60) else []
    if turn.kind not in ("text", "voice"):
        return [wechat_inbound.CAPABILITIES]
    if not turn.text:
        return [wechat_inbound.ASK_TO_TYPE] if turn.kind == "voice" else []
    if turn.channel == "wechat":
        linked = _phone_link_reply(turn)
        if linked is not None:
            return linked
    if turn.channel == "sms":
        accept_by_sms = _optional("app.services.help", "accept_by_sms")
        if accept_by_sms and accept_by_sms(from_phone=turn.address, text=turn.text):
            return []  # a contact took a help alert; the help service confirms it to them
    if not turn.ticket_may_claim:
        return None
    ticket = tickets.route_resident_message(conversation_id=turn.conversation_id, message_id=turn.message_id)
    if ticket is not None:
        # Staff answer from now on; the resident hears once that a person has the conversation.
        return [HANDED_OVER] if _first_time(f"linli:handover-notice:{ticket.id}", 30 * 86400) else []
    thanks = tickets.capture_csat(conversation_id=turn.conversation_id, text=turn.text)
    if thanks:
        return [thanks]
    return None


def _bot_turn(turn: Turn, *, deadline: float, passive: bool, conn: Connection) -> Outcome:
    timeout = float(current_app.config.get("BOT_TIMEOUT", 10.0))
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
    answer = _answer_of(lambda: exchange.result(within=max(0.1, deadline - time.monotonic())))
    return _deliver(turn, *_replies_of(turn, *answer), author="bot", passive=passive, conn=conn)


def _finish_late(app, turn: Turn, future: Future, guard: _Guard) -> None:
    """The bot answered after the caller's budget: queue its replies in the outbox, and end the turn's guard."""
    messages, failure = _answer_of(future.result)
    with app.app_context():
        try:
            outcome = _queue_late_answer(turn, messages, failure)
        except Exception:
            # The database is down: the answer waits in Redis for it (the resident heard "success" already).
            log.exception("late bot reply for message %s could not be queued; retrying", turn.message_id)
            from app.jobs.conversations import queue_late_reply

            queued = jobs.enqueue("outbound", queue_late_reply, asdict(turn), messages, failure,
                                  job_id=f"late-reply-{turn.message_id}", retry=Retry(max=6, interval=LATE_RETRY))
            # Without Redis either, a retry of the message (if the channel sends one) answers it.
            guard.finish("outbox" if queued else "failed")
            return
        guard.finish(outcome.guard_state, classify=turn.message_id if outcome.classify else None)


def queue_late_reply(*, turn: Turn, messages: list[dict] | None, failure: str | None) -> None:
    """The retry of a late answer that could not be queued; a repeat is harmless (the outbox rows' dedup keys)."""
    if _queue_late_answer(turn, messages, failure).classify:
        bot_insights.classify_later(message_id=turn.message_id)


def _queue_late_answer(turn: Turn, messages: list[dict] | None, failure: str | None) -> Outcome:
    outcome = _deliver(turn, *_replies_of(turn, messages, failure), author="bot", passive=False)
    _late_answer_queued(turn)
    return outcome


def hand_over_lost_late_answers(*, now: datetime | None = None, limit: int = 100) -> int:
    """Messages whose late answer never got queued (the process died waiting for the bot): a person answers.

    Returns how many messages were handed over.
    """
    now = now or utcnow()
    overdue = db.session.execute(
        select(_messages.c.id, _messages.c.channel, _messages.c.text, _messages.c.kind,
               _conversations.c.id.label("conversation_id"), _conversations.c.resident_id,
               _conversations.c.bot_sender, _conversations.c.address)
        .join_from(_messages, _conversations, _conversations.c.id == _messages.c.conversation_id)
        .where(_messages.c.late_answer_due_at < now).order_by(_messages.c.id).limit(limit)
    ).all()
    handed = 0
    for row in overdue:
        turn = Turn(channel=row.channel, resident_id=row.resident_id, conversation_id=row.conversation_id,
                    message_id=row.id, bot_sender=row.bot_sender, address=row.address, text=row.text, kind=row.kind)
        handed += _hand_over_lost_answer(turn)
        _late_answer_queued(turn)
    return handed


def _hand_over_lost_answer(turn: Turn) -> bool:
    """The apology and the ticket for a lost late answer, kept together or not at all.

    The apology takes the first reply's dedup key before the ticket is opened, in the same transaction. So a
    late answer queued after all, earlier or in this very moment by another process, wins the key, and then
    neither the apology nor a ticket for an answered message is kept.
    """
    db.session.execute(_INSERT_MESSAGES, _transcript(turn, [APOLOGY], author="system"))
    apology = outbox.stage_message(conversation_id=turn.conversation_id, body=APOLOGY, dedup_key=_dedup_key(turn, 0))
    try:
        db.session.flush()  # on PostgreSQL, waits for a concurrent insert of the same key to end
    except IntegrityError:
        db.session.rollback()
        return False
    log.error("the late answer to message %s was lost; handing it to staff", turn.message_id)
    _hand_to_staff(turn, reason="the bot's late answer was lost")
    db.session.commit()
    outbox.dispatch(outbound_ids=[apology.id])
    return True


def _late_answer_queued(turn: Turn) -> None:
    db.session.execute(_MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": None})
    db.session.commit()


def _answer_of(answer: Callable[[], list[dict]]) -> tuple[list[dict] | None, str | None]:
    """The bot's messages, or None and why it gave none."""
    try:
        return answer(), None
    except Exception as exc:  # BotUnavailable, or any bug in the client: a person answers instead
        return None, str(exc)


def _replies_of(turn: Turn, messages: list[dict] | None, failure: str | None) -> tuple[list[str], bool]:
    """The bot's replies, and whether they answer the message (not an apology for the bot's failure)."""
    if messages is None:
        log.warning("bot failed for message %s: %s", turn.message_id, failure)
        _hand_to_staff(turn, reason=failure or "")
        return [APOLOGY], False
    return [text for text in (_render(m) for m in messages) if text], True


def _render(message: dict) -> str:
    text = str(message.get("text") or "").strip()
    buttons = message.get("buttons") or []
    # Neither SMS nor a passive WeChat text has buttons: they become numbered lines to reply with.
    options = [f"{n}. {b.get('title', '')}" for n, b in enumerate(buttons, 1) if isinstance(b, dict)]
    return "\n".join(filter(None, [text, *options]))


def _hand_to_staff(turn: Turn, *, reason: str) -> None:
    resident = db.session.get(Resident, turn.resident_id)
    street_id = identities.street_of(resident)
    if street_id is None:
        log.error("no street configured; message %s waits without a ticket", turn.message_id)
        return
    ticket = tickets.open_ticket(street_id=street_id, source="bot", subject=(turn.text or "居民留言")[:60],
                                 category="fallback", conversation_id=turn.conversation_id,
                                 resident_id=turn.resident_id, body=turn.text)
    if tickets.holds_message(ticket_id=ticket.id, message_id=turn.message_id):
        return  # handed over already: a retried late answer, or the sweeper and the late answer both
    tickets.add_event(ticket_id=ticket.id, kind="message_in", body=turn.text,
                      data={"message_id": turn.message_id, "bot_error": reason[:300]})


def _deliver(turn: Turn, replies: list[str], answer: bool, *, author: str, passive: bool,
             conn: Connection | None = None) -> Outcome:
    """Keep the replies as messages; answer passively if allowed and short enough, else queue them in order.

    `answer`: the replies answer the message (the bot's reply), rather than acknowledge it (an apology,
    "slow down", "handed to staff"): only then may a crash lose the stored message along with the transcript.
    `conn`: the turn's inbound_db connection, needed for a passive answer.
    """
    if not replies:
        return Outcome(classify=answer)
    rows = _transcript(turn, replies, author=author)
    joined = "\n\n".join(replies)
    if passive and len(joined.encode()) <= PASSIVE_MAX_BYTES:
        if db.session.registry.has() and db.session().in_transaction():
            db.session.commit()  # whatever deciding the answer wrote (a ticket event, say) first: see inbound_db
        # Only a transcript of what goes back in the HTTP response: its commit need not wait for the disk.
        conn.execute(_INSERT_MESSAGES, rows)
        return Outcome(passive_text=joined, guard_state="passive:" + joined, needs_flush=not answer, classify=answer)
    db.session.execute(_INSERT_MESSAGES, rows)
    bodies = sms_text.segment("\n".join(replies)) if turn.channel == "sms" else replies
    staged = [outbox.stage_message(conversation_id=turn.conversation_id, body=body, dedup_key=_dedup_key(turn, n))
              for n, body in enumerate(bodies)]
    try:
        db.session.commit()
    except IntegrityError:  # this turn's replies were queued already
        db.session.rollback()
        staged = []
    outbox.dispatch(outbound_ids=[row.id for row in staged])
    # That commit waited for the disk, and the message's earlier commit is on disk with it.
    return Outcome(deferred=True, guard_state="outbox", needs_flush=False, classify=answer)


def _transcript(turn: Turn, replies: list[str], *, author: str) -> list[dict]:
    """The conversation's rows of the replies (the outbox rows are what gets sent)."""
    return [dict(conversation_id=turn.conversation_id, channel=turn.channel, direction="out", author=author,
                 kind="text", text=text) for text in replies]


def _dedup_key(turn: Turn, n: int) -> str:
    """The outbox key of a turn's n-th reply: one set of replies per turn, whoever queues it."""
    return f"turn:{turn.message_id}:{n}"


def _make_durable(turn: Turn, *, late: bool) -> None:
    """Wait until the stored message is on disk: a durable commit flushes the log up to itself. `late`: the bot
    is still answering, so the message is marked until its answer is queued (hand_over_lost_late_answers)."""
    if late:
        db.session.execute(_MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": utcnow() + LATE_ANSWER_GRACE})
    elif db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_TOUCH_CONVERSATION, {"conversation_id": turn.conversation_id, "now": utcnow()})
    else:
        return  # SQLite's commits are all durable
    db.session.commit()


def _phone_link_reply(turn: Turn) -> list[str] | None:
    request = _LINK_REQUEST.match(turn.text)
    if request:
        try:
            phone = identities.request_phone_link(resident_id=turn.resident_id, phone=request.group(1))
        except DomainError as exc:
            return [exc.message]
        except Exception as exc:  # the SMS provider refused or is down
            log.warning("link code SMS failed: %s", exc)
            return [LINK_SMS_FAILED]
        return [LINK_CODE_SENT.format(masked=phone[:-8] + "****" + phone[-4:])]
    code = _LINK_CODE.match(turn.text)
    if code and identities.pending_link(resident_id=turn.resident_id) is not None:
        try:
            identities.confirm_phone_link(resident_id=turn.resident_id, code=code.group(1))
        except DomainError as exc:
            return [exc.message]
        return [LINKED]
    return None


def _over_rate(turn: Turn) -> bool:
    """Per-sender flood guard; the first messages of a window always pass, and Redis trouble lets all pass."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return False
    rate = parse_rate(current_app.config.get("SENDER_RATE_LIMIT", "20/minute"))
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


def _optional(module: str, name: str):
    """A function of a service another part of Linli provides, or None while it does not exist."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


_TAKE_OVER = """
if redis.call('get', KEYS[1]) == 'failed' then
  redis.call('set', KEYS[1], 'running', 'EX', ARGV[1])
  return 1
end
return 0
"""


class _Guard:
    """The fast half of inbound dedup: a Redis key per message id holding how its first delivery ended."""

    def __init__(self, channel: str, external_id: str):
        self.key = f"linli:inbound:{channel}:{external_id}"
        self.redis = get_redis()

    def claim(self) -> bool:
        try:
            return bool(self.redis.set(self.key, "running", nx=True, ex=DEDUP_TTL))
        except RedisError:
            return True  # the unique message row still lets only one through

    def finish(self, state: str, *, classify: int | None = None) -> None:
        """Record how the turn ended; with `classify`, queue that message's intent recording in the same
        round trip."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self.key, state, ex=DEDUP_TTL)
            if classify is not None:
                bot_insights.classify_later(message_id=classify, pipeline=pipe)
            pipe.execute()
        except RedisError as exc:
            if classify is not None:
                log.warning("message %s will not be classified: %s", classify, exc)

    def release(self) -> None:
        try:
            self.redis.delete(self.key)
        except RedisError:
            pass

    def take_over_failed(self) -> bool:
        """Atomically turn a "failed" first delivery into this one's "running" turn."""
        try:
            return bool(self.redis.eval(_TAKE_OVER, 1, self.key, DEDUP_TTL))
        except RedisError:
            return False  # without Redis the unique row decides: the turn counts as taken

    def outcome_of_first(self, *, wait: float) -> Outcome:
        """A retry's answer: the first delivery's passive reply once it is known, else nothing."""
        deadline = time.monotonic() + wait
        while True:
            try:
                state = (self.redis.get(self.key) or b"").decode()
            except RedisError:
                state = ""
            if state.startswith("passive:"):
                return Outcome(passive_text=state[len("passive:"):], duplicate=True)
            if state != "running" or time.monotonic() >= deadline:
                return Outcome(duplicate=True)
            time.sleep(0.05)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Threads that wait on the bot, so a webhook can stop waiting at its budget without losing the answer."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=int(current_app.config.get("BOT_THREADS", 32)),
                                       thread_name_prefix="bot-turn")
        return _pool
