"""A bot answer that comes after the webhook's budget: its message stays marked until the answer is queued,
and a sweeper hands to staff the messages whose answer died with its process (gunicorn killed with SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import timedelta
from urllib.request import Request, urlopen

import pytest
from sqlalchemy import insert, select

from app.core.extensions import db
from app.models import Message, OutboundMessage, Ticket, TicketEvent
from app.models.base import utcnow
from app.services import conversations
from app.services.delivery import sending as delivery
from tests.conftest import server_env
from tests.factories import ConversationFactory
from tests.reliability.support import a_session_waits_on_a_lock, signed_wechat_query, wait_until, wechat_text
from tests.servers import GUNICORN_SETUPS, healthy, start_gunicorn


def inbound(text: str) -> Message:
    """The resident's message with this text, as the database has it now."""
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.direction == "in", Message.text == text))


def stored_message(openid: str, external_id: str, *, overdue: bool = True) -> tuple[object, Message]:
    """A WeChat conversation and the resident's flushed message 我要挂号, marked overdue for its late answer."""
    conversation = ConversationFactory(channel="wechat", address=openid)
    db.session.flush()
    message = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                      external_id=external_id, text="我要挂号",
                      late_answer_due_at=utcnow() - timedelta(seconds=1) if overdue else None)
    db.session.add(message)
    db.session.flush()
    return conversation, message


def test_a_late_turn_is_marked_until_its_answer_is_queued(app, web, slow_bot, street, recorders):
    response = web.post("/wechat?" + signed_wechat_query(), data=wechat_text("oLate0001", "我要挂号", 41),
                        content_type="text/xml")
    assert response.get_data(as_text=True) == "success"
    due = inbound("我要挂号").late_answer_due_at
    assert due is not None and due > utcnow() + conversations.LATE_ANSWER_GRACE - timedelta(minutes=1)

    wait_until(lambda: inbound("我要挂号").late_answer_due_at is None, what="the mark cleared")
    assert [row.body for row in db.session.scalars(select(OutboundMessage))] == ["请选择科室"]
    assert conversations.hand_over_lost_late_answers(now=utcnow() + timedelta(hours=1)) == 0
    assert not db.session.scalars(select(Ticket)).all()


def _serve(app, rasa_url: str, setup: str) -> tuple[subprocess.Popen, str]:
    proc, port = start_gunicorn(setup, server_env(app, RASA_URL=rasa_url, WECHAT_REPLY_BUDGET="0.3"))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base + "/healthz"), timeout=30, what="gunicorn serving the app")
    return proc, base


@pytest.mark.parametrize("setup", sorted(GUNICORN_SETUPS))
def test_a_late_answer_lost_with_its_process_is_handed_to_staff_once(app, committed, street, rasa, recorders, setup):
    wechat, _ = recorders
    rasa.delay = 30.0  # the answer would come long after the process is gone
    proc, base = _serve(app, rasa.url, setup)
    try:
        request = Request(base + "/wechat?" + signed_wechat_query(), data=wechat_text("oLate0002", "我要挂号", 42),
                          headers={"Content-Type": "text/xml"})
        assert urlopen(request, timeout=10).read() == b"success"
        wait_until(lambda: rasa.turns, what="the bot asked")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # an OOM kill or a crashed host, with the bot's answer on its way
        proc.wait(10)

    message = inbound("我要挂号")
    assert message.late_answer_due_at is not None
    assert not db.session.scalars(select(OutboundMessage)).all()
    assert conversations.hand_over_lost_late_answers() == 0  # not overdue yet

    later = utcnow() + conversations.LATE_ANSWER_GRACE + timedelta(seconds=1)
    assert conversations.hand_over_lost_late_answers(now=later) == 1
    assert conversations.hand_over_lost_late_answers(now=later) == 0  # handed over once
    ticket = db.session.scalar(select(Ticket))
    assert ticket is not None and ticket.conversation_id == message.conversation_id
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert [(row.body, row.dedup_key) for row in rows] == [(conversations.APOLOGY, f"turn:{message.id}:0")]
    assert delivery.deliver(outbound_id=rows[0].id) == "sent"
    assert wechat.texts_to("oLate0002") == [conversations.APOLOGY]
    assert inbound("我要挂号").late_answer_due_at is None


def test_an_answer_queued_before_the_sweep_is_not_followed_by_an_apology(app, committed, street, recorders):
    # The late answer's rows were queued but its mark was not cleared (the process died in between).
    conversation, message = stored_message("oLate0003", "43")
    db.session.flush()
    db.session.add(OutboundMessage(conversation_id=conversation.id, channel="wechat", to_address="oLate0003",
                                   body="请选择科室", dedup_key=f"turn:{message.id}:0"))
    db.session.commit()

    assert conversations.hand_over_lost_late_answers() == 0
    assert [row.body for row in db.session.scalars(select(OutboundMessage))] == ["请选择科室"]
    assert not db.session.scalars(select(Ticket)).all()
    assert inbound("我要挂号").late_answer_due_at is None


def test_a_late_answer_queued_during_the_sweep_wins_and_no_ticket_is_left_open(app, committed, street, recorders):
    # The sweeper and a late answer (say, requeued after a long database outage) reach the same message at
    # the same moment: the answer's transaction holds the first reply's key while the sweeper runs.
    conversation, message = stored_message("oLate0004", "44")
    db.session.commit()
    outbound = OutboundMessage.__table__
    swept = {}

    def sweep():
        with app.app_context():
            swept["handed"] = conversations.hand_over_lost_late_answers()

    with db.engine.connect() as answer:
        answer.execute(insert(outbound).values(conversation_id=conversation.id, channel="wechat",
                                               to_address="oLate0004", body="请选择科室", kind="reply", sequence=1,
                                               dedup_key=f"turn:{message.id}:0"))
        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        wait_until(a_session_waits_on_a_lock, what="the sweeper waiting on the answer's key")
        answer.commit()
        sweeper.join(10)

    assert swept == {"handed": 0}
    assert not db.session.scalars(select(Ticket)).all()
    db.session.expire_all()
    assert [row.body for row in db.session.scalars(select(OutboundMessage))] == ["请选择科室"]
    assert [m.text for m in db.session.scalars(select(Message).where(Message.direction == "out"))] == []
    assert inbound("我要挂号").late_answer_due_at is None


def test_a_failed_late_turn_handed_over_twice_puts_the_message_on_one_ticket_once(app, committed, street, recorders):
    conversation, message = stored_message("oLate0005", "45", overdue=False)
    db.session.commit()
    turn = conversations.Turn(channel="wechat", resident_id=conversation.resident_id, conversation_id=conversation.id,
                              message_id=message.id, bot_sender=conversation.bot_sender, address="oLate0005",
                              text="我要挂号", kind="text")

    # The bot failed after the budget. The job queuing that outcome ran, then ran again: a retry after the
    # database failed it late, or a requeue from the failed registry.
    for _ in range(2):
        conversations.queue_late_reply(turn=turn, messages=None, failure="ReadTimeout: no answer within 10.0s")

    db.session.expire_all()
    assert len(db.session.scalars(select(Ticket)).all()) == 1
    events = db.session.scalars(select(TicketEvent).where(TicketEvent.kind == "message_in")).all()
    assert [(e.body, e.data["message_id"]) for e in events] == [("我要挂号", message.id)]
    assert [row.body for row in db.session.scalars(select(OutboundMessage))] == [conversations.APOLOGY]
