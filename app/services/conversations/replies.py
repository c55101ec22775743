"""A turn's replies: kept in the transcript, answered in the webhook's own response when short and in time,
else queued in the outbox in order; when the bot fails, an apology and a person instead."""
from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy.exc import IntegrityError

from app.core.extensions import db
from app.models import Conversation, Message, Resident
from app.services import delivery, outbox, residents, tickets

log = logging.getLogger(__name__)

PASSIVE_MAX_BYTES = 2000  # WeChat cuts a passive text reply at about 2048 bytes
APOLOGY = "抱歉，智能助手暂时无法回答。您的留言已转给工作人员，我们会尽快回复您。"


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
    # The bot's answer when it came after the caller's budget: receive() hands it to finish_late.
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


# Plain table statements: the ORM's unit of work costs several times more CPU per row on the webhook's path.
MESSAGES, CONVERSATIONS, RESIDENTS = Message.__table__, Conversation.__table__, Resident.__table__
INSERT_MESSAGES = insert(MESSAGES)
TOUCH_CONVERSATION = (update(CONVERSATIONS).where(CONVERSATIONS.c.id == bindparam("conversation_id"))
                       .values(last_inbound_at=bindparam("now")))
MARK_LATE_ANSWER = (update(MESSAGES).where(MESSAGES.c.id == bindparam("message_id"))
                     .values(late_answer_due_at=bindparam("due")))
# Channels that never deliver a message twice (Twilio does not retry an SMS webhook): no retry can take over a
# turn whose process died, so their messages carry the late-answer mark from the INSERT that stores them, and
# lose it in the commit that ends the turn (the outbox's, or _make_durable's). One that keeps it is handed to
# staff by hand_over_lost_late_answers. WeChat's are not marked: docs/reliability.md, "A node killed mid-turn".
MARKED_WHEN_STORED = frozenset({"sms"})


def answer_of(answer: Callable[[], list[dict]]) -> tuple[list[dict] | None, str | None]:
    """The bot's messages, or None and why it gave none."""
    try:
        return answer(), None
    except Exception as exc:  # BotUnavailable, or any bug in the client: a person answers instead
        return None, str(exc)


def replies_of(turn: Turn, messages: list[dict] | None, failure: str | None) -> tuple[list[str], bool]:
    """The bot's replies, and whether they answer the message (not an apology for the bot's failure)."""
    replies = [text for text in (_render(m) for m in messages or []) if text]
    if messages is not None and not replies and turn.text:
        # Rasa's REST channel answers HTTP 200 with [] when its own turn fails (its lock or tracker store gone,
        # an action server error); this bot answers every message it understands or not (no story or rule ends a
        # turn silently: bot/tests), so nothing at all is that failure, not a bot that chose silence.
        messages, failure = None, "the bot answered nothing (Rasa's REST channel answers [] when its turn fails)"
    if messages is None:
        log.warning("bot failed for message %s: %s", turn.message_id, failure)
        hand_to_staff(turn, reason=failure or "")
        return [APOLOGY], False
    return replies, True


def _render(message: dict) -> str:
    text = str(message.get("text") or "").strip()
    buttons = message.get("buttons") or []
    # Neither SMS nor a passive WeChat text has buttons: they become numbered lines to reply with.
    options = [f"{n}. {b.get('title', '')}" for n, b in enumerate(buttons, 1) if isinstance(b, dict)]
    return "\n".join(filter(None, [text, *options]))


def hand_to_staff(turn: Turn, *, reason: str) -> None:
    resident = db.session.get(Resident, turn.resident_id)
    street_id = residents.street_of(resident)
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


def deliver(turn: Turn, replies: list[str], answer: bool, *, author: str, passive: bool,
             conn: Connection | None = None) -> Outcome:
    """Keep the replies as messages; answer passively if allowed and short enough, else queue them in order.

    `answer`: the replies answer the message (the bot's reply), rather than acknowledge it (an apology,
    "slow down", "handed to staff"): only then may a crash lose the stored message along with the transcript.
    `conn`: the turn's inbound_db connection, needed for a passive answer.
    """
    if not replies:
        return Outcome(classify=answer)
    rows = transcript(turn, replies, author=author)
    joined = "\n\n".join(replies)
    if passive and len(joined.encode()) <= PASSIVE_MAX_BYTES:
        if db.session.registry.has() and db.session().in_transaction():
            db.session.commit()  # whatever deciding the answer wrote (a ticket event, say) first: see inbound_db
        # Only a transcript of what goes back in the HTTP response: its commit need not wait for the disk.
        conn.execute(INSERT_MESSAGES, rows)
        return Outcome(passive_text=joined, guard_state="passive:" + joined, needs_flush=not answer, classify=answer)
    db.session.execute(INSERT_MESSAGES, rows)
    if turn.channel in MARKED_WHEN_STORED:
        db.session.execute(MARK_LATE_ANSWER, {"message_id": turn.message_id, "due": None})  # answered: see above
    bodies = delivery.segment("\n".join(replies)) if turn.channel == "sms" else replies
    staged = [outbox.stage_message(conversation_id=turn.conversation_id, body=body, dedup_key=dedup_key(turn, n))
              for n, body in enumerate(bodies)]
    try:
        db.session.commit()
    except IntegrityError:  # this turn's replies were queued already
        db.session.rollback()
        staged = []
    outbox.dispatch(outbound_ids=[row.id for row in staged])
    # That commit waited for the disk, and the message's earlier commit is on disk with it.
    return Outcome(deferred=True, guard_state="outbox", needs_flush=False, classify=answer)


def transcript(turn: Turn, replies: list[str], *, author: str) -> list[dict]:
    """The conversation's rows of the replies (the outbox rows are what gets sent)."""
    return [dict(conversation_id=turn.conversation_id, channel=turn.channel, direction="out", author=author,
                 kind="text", text=text) for text in replies]


def dedup_key(turn: Turn, n: int) -> str:
    """The outbox key of a turn's n-th reply: one set of replies per turn, whoever queues it."""
    return f"turn:{turn.message_id}:{n}"
