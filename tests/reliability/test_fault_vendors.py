"""WeChat's 客服 API and Twilio failing under traffic: server errors, "system busy", rate limits and timeouts.

Residents write through the signed webhooks; their replies leave through the outbox, delivered by an RQ worker
(in-process, burst) with the real wechatpy and twilio clients against the stub servers. Transient failures are
retried until each reply is delivered exactly once; permanent ones end as a failed row with a ticket whose
timeline says why. No webhook answers 500, and no job crashes (RQ's failed registry stays empty).

Per-row retry and give-up are proven in tests/integration/test_outbox_delivery.py; this is the same under load,
end to end, with timeouts in the mix.
"""
from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest
from sqlalchemy import select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.core.worker import build_worker
from app.models import OutboundMessage, Ticket, TicketEvent
from app.services.delivery.jobs import sweep_outbox
from integrations.rasa import RasaRestClient
from integrations.twilio import TwilioTransport
from integrations.wechat import WeChatClientSender
from tests.reliability.support import (
    PUBLIC,
    StoppableRasa,
    signed_wechat_query,
    twilio_signature,
    wait_until,
    wechat_text,
)

KEFU = "/cgi-bin/message/custom/send"
CLIENT_TIMEOUT = 0.3  # a planned sleep of 1 s at the stub is a timeout for the client
OPENIDS = [f"oVendor{n:04d}" for n in range(6)]
PHONES = [f"+86139000{n:05d}" for n in range(3)]


@pytest.fixture
def wired(app, committed, street, wechat_stub, twilio_stub, monkeypatch):
    """Real clients aimed at the stubs, a quick bot, fast retries; the app's previous transports restored."""
    rasa = StoppableRasa(delay=0.05).start()
    current = transports.use(app)
    previous = (current.wechat, current.twilio, current.bot)
    transports.use(app, bot=RasaRestClient(rasa.url),
                   wechat=WeChatClientSender(wechat_stub.app_id, wechat_stub.secret, wechat_stub.api_base,
                                             get_redis(), timeout=CLIENT_TIMEOUT),
                   twilio=TwilioTransport(twilio_stub.account_sid, twilio_stub.auth_token, twilio_stub.from_number,
                                          twilio_stub.base_url, timeout=CLIENT_TIMEOUT))
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", "reliability-twilio-token")
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.01)  # every WeChat reply goes by the 客服 API
    monkeypatch.setitem(app.config, "OUTBOX_RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setitem(app.config, "OUTBOX_SWEEP_GRACE_SECONDS", 0)
    yield wechat_stub, twilio_stub
    transports.use(app, wechat=previous[0], twilio=previous[1], bot=previous[2])
    rasa.stop()


_ids = itertools.count(9_000_000)


def write_in(app, texts: dict[str, str]) -> None:
    """Each address writes its text: openids through the WeChat webhook, phone numbers by SMS."""
    client = app.test_client()
    for address, text in texts.items():
        if address.startswith("+"):
            form = {"MessageSid": f"SM{next(_ids)}", "From": address, "To": "+8610000000", "Body": text}
            response = client.post("/sms", data=form, headers={"X-Twilio-Signature": twilio_signature(
                PUBLIC + "/sms", form, "reliability-twilio-token")})
        else:
            response = client.post("/wechat?" + signed_wechat_query(), data=wechat_text(address, text, next(_ids)),
                                   content_type="text/xml")
        assert response.status_code == 200, response.get_data(as_text=True)


def queued() -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(OutboundMessage.id)).all())


def unfinished() -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(OutboundMessage.id).where(
        OutboundMessage.status.in_(("pending", "sending")))).all())


def deliver_until_settled(app, expected_rows: int, timeout: float = 30) -> None:
    """What the worker and the ticker do, compressed: run the queue dry, let retries fall due, sweep, repeat."""
    wait_until(lambda: queued() >= expected_rows, timeout=10, what="every reply to be queued")
    deadline = time.monotonic() + timeout
    while True:
        build_worker(app, ("outbound",)).work(burst=True)
        if unfinished() == 0:
            return
        assert time.monotonic() < deadline, "delivery did not settle"
        time.sleep(0.05)
        sweep_outbox()


def kefu_delivered(stub) -> Counter:
    return Counter((c["json"]["touser"], c["json"]["text"]["content"]) for c in stub.calls_to(KEFU)
                   if c["response"] and c["response"].get("errcode") == 0)


def sms_delivered(stub) -> Counter:
    return Counter((m["to"], m["body"]) for m in stub.sent_messages())


def test_transient_errors_and_timeouts_are_retried_until_each_reply_is_delivered_exactly_once(app, wired):
    wechat, twilio = wired
    wechat.fail(path=KEFU, status=502, times=3)
    wechat.fail(path=KEFU, sleep=1.0, status=504, times=2)  # the client gives up first: a timeout
    wechat.fail(path=KEFU, code=-1, times=2)  # "system busy"
    twilio.fail(status=500, times=2)
    twilio.fail(sleep=1.0, status=503, times=1)
    twilio.fail(status=429, code=20429, times=1)

    texts = {address: f"{address}问：社保怎么办" for address in OPENIDS + PHONES}
    write_in(app, texts)
    deliver_until_settled(app, expected_rows=len(texts))

    assert kefu_delivered(wechat) == Counter((a, f"机器人：{t}") for a, t in texts.items() if not a.startswith("+"))
    assert sms_delivered(twilio) == Counter((a, f"机器人：{t}") for a, t in texts.items() if a.startswith("+"))
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert {r.status for r in rows} == {"sent"}
    assert sum(r.attempts for r in rows) == len(rows) + 7 + 4  # every planned failure cost exactly one retry
    assert get_queue("outbound").failed_job_registry.count == 0  # no job crashed


def test_permanent_failures_end_on_a_ticket_that_says_why_and_nothing_crashes(app, wired):
    wechat, twilio = wired
    wechat.fail(path=KEFU, status=503, times=1000)
    twilio.fail(status=500, times=1000)
    texts = {OPENIDS[0]: "我要挂号", PHONES[0]: "我要挂号"}
    write_in(app, texts)
    deliver_until_settled(app, expected_rows=len(texts))

    rows = db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    assert [(r.status, r.attempts) for r in rows] == [("failed", 6), ("failed", 6)]
    for row in rows:
        ticket = db.session.scalar(select(Ticket).where(Ticket.source == "delivery_failure",
                                                        Ticket.conversation_id == row.conversation_id))
        assert ticket is not None and ticket.status == "open", f"no ticket for failed row {row.id}"
        event = db.session.scalar(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                            TicketEvent.kind == "delivery_failed"))
        assert event.data["outbound_id"] == row.id and event.body, "the ticket must say why"
    assert kefu_delivered(wechat) == Counter() and sms_delivered(twilio) == Counter()
    assert get_queue("outbound").failed_job_registry.count == 0

    # The webhooks keep working: the vendors' outage does not reach the residents' side.
    write_in(app, {OPENIDS[1]: "还能收到吗", PHONES[1]: "还能收到吗"})
