"""WeChat retries: one bot turn per MsgId (events: FromUserName + CreateTime) under real concurrency, and the
5-second rule (a late answer goes through the 客服 API from the outbox, in order)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Message, OutboundMessage
from app.services.delivery import sending as delivery
from tests.helpers.wechat import event_xml, plain_query, text_xml

OPENID = "oRetryingResident001"


def messages(direction: str) -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.direction == direction).order_by(Message.id)))


def post_concurrently(app, xml: str, n: int = 10) -> list[tuple[int, str]]:
    """n copies of one signed request at once, each from its own thread and client (WeChat's retries)."""
    query = plain_query()

    def post(_):
        response = app.test_client().post("/wechat?" + query, data=xml, content_type="text/xml")
        return response.status_code, response.get_data(as_text=True)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(post, range(n)))


def test_ten_concurrent_retries_of_one_msgid_make_exactly_one_bot_turn(app, web, rasa, street):
    rasa.delay = 0.5  # the retries arrive while the first turn is still waiting for the bot
    answers = post_concurrently(app, text_xml(OPENID, "我要挂号", 90001))

    assert len(rasa.turns) == 1
    assert all(status == 200 for status, _ in answers)
    # Retries get the first delivery's passive reply once it is known, else "success"; never an error.
    assert all("收到：我要挂号" in body or body == "success" for _, body in answers)
    assert sum("收到：我要挂号" in body for _, body in answers) >= 1
    assert [m.text for m in messages("in")] == ["我要挂号"]
    assert [m.text for m in messages("out")] == ["收到：我要挂号"]


def test_ten_concurrent_retries_of_one_event_make_one_welcome(app, web, rasa, street):
    answers = post_concurrently(app, event_xml(OPENID, "subscribe", create_time=1700001000))
    assert all(status == 200 for status, _ in answers)
    assert len(messages("in")) == 1 and len(messages("out")) == 1
    assert rasa.turns == []


def test_a_retry_after_redis_forgot_is_stopped_by_the_unique_row(app, web, rasa, street):
    xml = text_xml(OPENID, "低保", 90002)
    assert "收到：低保" in web.post("/wechat?" + plain_query(), data=xml, content_type="text/xml").get_data(True)
    get_redis_flush(app)

    again = web.post("/wechat?" + plain_query(), data=xml, content_type="text/xml")
    assert again.status_code == 200 and again.get_data(as_text=True) == "success"
    assert len(rasa.turns) == 1 and len(messages("in")) == 1


def get_redis_flush(app):
    with app.app_context():
        get_redis().flushdb()


def test_a_bot_slower_than_the_budget_gets_success_then_the_replies_go_by_kefu_in_order(
        app, web, slow_bot, street, recorders):
    wechat, _ = recorders
    slow_bot.reply = lambda sender, text: [{"text": "第一条：请选择科室"}, {"text": "第二条：请选择日期"}]

    started = time.monotonic()
    response = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "挂号", 90003), content_type="text/xml")
    assert response.get_data(as_text=True) == "success"
    assert time.monotonic() - started < 0.9  # answered at the budget, not when the bot was done

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and db.session.scalar(select(func.count(OutboundMessage.id))) < 2:
        time.sleep(0.05)
    rows = list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.sequence)))
    assert [r.body for r in rows] == ["第一条：请选择科室", "第二条：请选择日期"]

    # Deliver the second first: it waits for the first, whose delivery then lets it go.
    assert delivery.deliver(outbound_id=rows[1].id) == "waiting"
    assert delivery.deliver(outbound_id=rows[0].id) == "sent"
    assert delivery.deliver(outbound_id=rows[1].id) == "sent"
    assert wechat.texts_to(OPENID) == ["第一条：请选择科室", "第二条：请选择日期"]
    assert len(slow_bot.turns) == 1
