"""The bot (a Rasa REST server on loopback) stopped in the middle of conversations, then started again.

While it is down, every resident gets the apology, a ticket is opened for a person to answer, and every message is
kept; once it is back, new conversations go to the bot again, while the residents who met the outage stay with the
staff member who has their ticket (human mode), their follow-ups on that ticket. Nothing is lost either way.
(tests/integration/test_wechat_webhook.py proves the single-message apology; this is the outage over traffic.)
"""
from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app.core import transports
from app.core.extensions import db
from app.models import Message, OutboundMessage, Ticket, TicketEvent
from app.services.conversations import APOLOGY, HANDED_OVER
from integrations.rasa import RasaRestClient
from tests.reliability.support import (
    PUBLIC,
    TWILIO_TOKEN,
    StoppableRasa,
    passive_text,
    signed_wechat_query,
    twilio_signature,
    wechat_text,
)


@pytest.fixture
def bot(app):
    rasa = StoppableRasa().start()
    previous = transports.use(app).bot
    transports.use(app, bot=RasaRestClient(rasa.url))
    yield rasa
    transports.use(app, bot=previous)
    rasa.stop()


class Residents:
    """Residents writing through the signed webhooks; each message gets a fresh MsgId / MessageSid."""

    def __init__(self, app):
        self.app = app
        self._ids = itertools.count(8_000_000)  # thread-safe: a MsgId is unique, as WeChat's are

    def wechat(self, openid: str, text: str) -> str | None:
        response = self.app.test_client().post("/wechat?" + signed_wechat_query(),
                                               data=wechat_text(openid, text, next(self._ids)), content_type="text/xml")
        assert response.status_code == 200, response.get_data(as_text=True)
        return passive_text(response.get_data(as_text=True))

    def sms(self, phone: str, text: str) -> None:
        form = {"MessageSid": f"SM{next(self._ids)}", "From": phone, "To": "+8610000000", "Body": text}
        response = self.app.test_client().post("/sms", data=form, headers={
            "X-Twilio-Signature": twilio_signature(PUBLIC + "/sms", form)})
        assert response.status_code == 200, response.get_data(as_text=True)

    def wechat_together(self, messages: list[tuple[str, str]]) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(lambda m: self.wechat(*m), messages))


def _nothing_lost() -> None:
    """Every inbound message was answered by the bot or sits on a ticket for staff."""
    db.session.expire_all()
    on_tickets = {e.data.get("message_id") for e in db.session.scalars(
        select(TicketEvent).where(TicketEvent.kind == "message_in")) if e.data}
    for message in db.session.scalars(select(Message).where(Message.direction == "in")):
        answered_by_bot = db.session.scalar(select(Message.id).where(
            Message.conversation_id == message.conversation_id, Message.direction == "out",
            Message.author == "bot", Message.text == f"机器人：{message.text}"))
        assert answered_by_bot or message.id in on_tickets, f"message {message.text!r} was lost"


def test_a_bot_outage_apologises_opens_tickets_loses_nothing_and_the_bot_takes_new_conversations_after(
        app, committed, street, recorders, bot, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    people = Residents(app)
    before = [(f"oOutage{n:03d}", f"停机前第{n}条") for n in range(6)]
    assert people.wechat_together(before) == [f"机器人：{text}" for _, text in before]

    bot.stop()
    during = [(f"oOutage{n:03d}", f"停机中第{n}条") for n in range(4)] + [("oOutageNew01", "停机中新居民")]
    assert people.wechat_together(during) == [APOLOGY] * len(during)
    people.sms("+8613911112222", "停机中短信")
    db.session.expire_all()
    sms_reply = db.session.scalar(select(OutboundMessage.body).where(OutboundMessage.channel == "sms"))
    assert sms_reply == APOLOGY  # SMS answers through the outbox
    tickets = db.session.scalars(select(Ticket).where(Ticket.category == "fallback")).all()
    assert len(tickets) == len(during) + 1, "one ticket per conversation that met the outage"
    assert all(t.status == "open" for t in tickets)

    bot.start()
    after_new = [(f"oAfter{n:03d}", f"恢复后新居民{n}") for n in range(3)]
    assert people.wechat_together(after_new) == [f"机器人：{text}" for _, text in after_new]
    # Someone who met the outage is with staff now: the follow-up goes onto their ticket, not to the bot.
    assert people.wechat("oOutage000", "还在吗") == HANDED_OVER
    assert "还在吗" not in bot.texts()
    # Someone who did not write during the outage is still the bot's.
    assert people.wechat("oOutage005", "恢复后老居民") == "机器人：恢复后老居民"

    assert len(bot.texts()) == len(before) + len(after_new) + 1  # nothing reached it twice, nothing during
    _nothing_lost()


def test_a_bot_stuck_halfway_through_its_answer_gets_the_apology_within_the_budget(
        app, committed, street, recorders, bot, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.5)
    bot.stall = 3.0  # the answer begins to arrive, then stops for longer than WeChat waits
    people = Residents(app)

    started = time.monotonic()
    assert people.wechat("oStall001", "我要挂号") == APOLOGY
    assert time.monotonic() - started < 2.0  # well inside WeChat's 5 s, so the apology reaches the resident
    ticket = db.session.scalar(select(Ticket))
    assert ticket is not None and ticket.status == "open"
    _nothing_lost()
