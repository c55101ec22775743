"""Redis flushed during traffic (what a Redis restart without persistence does): the database guard keeps every
message to one bot turn, and the sweeper recovers the delivery jobs the flush threw away.

Already proven elsewhere, not repeated here: a single retry after a flush (tests/integration/test_wechat_dedup.py)
and a help alert whose scheduled step was flushed (tests/integration/test_help_durability.py).
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_queue, get_redis
from app.core.worker import build_worker
from app.models import Message, OutboundMessage
from app.services.delivery.jobs import sweep_outbox
from integrations.rasa import RasaRestClient
from tests.reliability.support import StoppableRasa, passive_text, signed_wechat_query, wait_until, wechat_text

RESIDENTS, MESSAGES_EACH, RETRIES = 12, 4, 3


@pytest.fixture
def bot(app):
    rasa = StoppableRasa(delay=0.02).start()
    previous = transports.use(app).bot
    transports.use(app, bot=RasaRestClient(rasa.url))
    yield rasa
    transports.use(app, bot=previous)
    rasa.stop()


def _traffic() -> list[tuple[str, str, int]]:
    return [(f"oFlush{r:04d}", f"第{r}位居民的第{m}条消息", 7_000_000 + r * 100 + m)
            for m in range(MESSAGES_EACH) for r in range(RESIDENTS)]


def _post(app, openid: str, text: str, msg_id: int):
    response = app.test_client().post("/wechat?" + signed_wechat_query(), data=wechat_text(openid, text, msg_id),
                                      content_type="text/xml")
    return response.status_code, response.get_data(as_text=True)


def _flush(app) -> None:
    with app.app_context():
        get_redis().flushdb()


def test_flushing_redis_during_traffic_lets_no_message_through_twice(app, committed, street, recorders, bot):
    traffic = _traffic()
    answers = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for n, message in enumerate(traffic):
            # WeChat's retries of one message arrive together, each from its own connection.
            answers += [pool.submit(_post, app, *message) for _ in range(RETRIES)]
            if n in (len(traffic) // 3, 2 * len(traffic) // 3):
                _flush(app)  # Redis forgets every dedup key, mid-stream
        answers = [a.result() for a in answers]
    _flush(app)
    late = [_post(app, *message) for message in traffic]  # one more retry of each, Redis remembering nothing

    assert {status for status, _ in answers + late} == {200}
    sent = [text for _, text, _ in traffic]
    assert Counter(bot.texts()) == Counter(sent), "a message reached the bot twice, or never"
    db.session.expire_all()
    inbound = db.session.scalars(select(Message.text).where(Message.direction == "in")).all()
    assert Counter(inbound) == Counter(sent)
    replies = db.session.scalars(select(Message.text).where(Message.direction == "out")).all()
    assert Counter(replies) == Counter(f"机器人：{text}" for text in sent)  # one answer per message
    # Every message was answered to the resident: in the first HTTP answer or a retry's.
    answered = {passive_text(body) for _, body in answers} - {None}
    assert answered == {f"机器人：{text}" for text in sent}
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 0  # nothing was sent a second way


def test_delivery_jobs_lost_in_a_flush_are_recovered_by_the_sweeper_and_each_reply_sent_once(
        app, committed, street, recorders, bot, monkeypatch):
    wechat, _ = recorders
    monkeypatch.setitem(app.config, "WECHAT_REPLY_BUDGET", 0.01)  # too slow for a passive reply: 客服 API
    monkeypatch.setitem(app.config, "OUTBOX_SWEEP_GRACE_SECONDS", 0)
    bot.delay = 0.1
    traffic = _traffic()[:RESIDENTS * 2]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert {status for status, _ in pool.map(lambda m: _post(app, *m), traffic)} == {200}

    def queued() -> int:
        db.session.expire_all()
        return db.session.scalar(select(func.count(OutboundMessage.id)))

    wait_until(lambda: queued() == len(traffic), timeout=15, what="every late reply to be queued")
    # A row is committed a moment before its job is enqueued: flush only once every job exists.
    wait_until(lambda: get_queue("outbound").count == len(traffic), timeout=15, what="every delivery job")
    _flush(app)  # the delivery jobs are gone; the rows are not
    worker = build_worker(app, ("outbound",))
    worker.work(burst=True)
    assert wechat.sent == [], "nothing should have been left to deliver it"

    assert sweep_outbox() == len(traffic)  # the ticker's job, run directly
    build_worker(app, ("outbound",)).work(burst=True)
    _flush(app)
    sweep_outbox()  # a second sweep after another flush finds nothing left to send
    build_worker(app, ("outbound",)).work(burst=True)

    delivered = Counter((m.openid, m.text) for m in wechat.sent)
    expected = Counter((openid, f"机器人：{text}") for openid, text, _ in traffic)
    assert delivered == expected, "a reply was lost or sent twice"
    db.session.expire_all()
    assert set(db.session.scalars(select(OutboundMessage.status))) == {"sent"}
