"""A slow bot does not hold the webhooks: after one answer misses its wait, the process stops waiting for the bot
for BOT_BEHIND_SECONDS and its replies go out when they come; SMS waits SMS_BOT_WAIT, not the bot's timeout."""
from __future__ import annotations

import time

from sqlalchemy import select

from app.core.extensions import db
from app.models import Message, OutboundMessage
from tests.helpers.wechat import plain_query, text_xml
from tests.integration.test_sms_webhook import PHONE, signed_post, sms, twilio_token  # noqa: F401 (fixture)
from tests.reliability.support import wait_until


def outbox_bodies(address: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboundMessage.body).where(OutboundMessage.to_address == address)
                                   .order_by(OutboundMessage.id)))


def post_text(web, openid: str, text: str, msg_id: int) -> str:
    return web.post("/wechat?" + plain_query(), data=text_xml(openid, text, msg_id),
                    content_type="text/xml").get_data(as_text=True)


def test_after_a_missed_budget_the_webhook_stops_waiting_until_the_bot_has_had_time(app, web, slow_bot, street,
                                                                                     recorders, monkeypatch):
    monkeypatch.setitem(app.config, "BOT_BEHIND_SECONDS", 1.5)
    slow_bot.reply = lambda sender, text: [{"text": f"答复：{text}"}]
    assert post_text(web, "oBehind0001", "第一条", 70001) == "success"  # missed the 0.3 s budget

    # The bot is quick again (0.05 s, well within the budget), but this process does not wait for it yet.
    slow_bot.delay = 0.05
    assert post_text(web, "oBehind0002", "第二条", 70002) == "success"
    wait_until(lambda: outbox_bodies("oBehind0002") == ["答复：第二条"], what="the reply queued for the 客服 API")

    # Once BOT_BEHIND_SECONDS are over, the next message waits again and is answered in the response.
    time.sleep(1.6)
    assert "答复：第三条" in post_text(web, "oBehind0003", "第三条", 70003)
    assert outbox_bodies("oBehind0003") == []
    wait_until(lambda: outbox_bodies("oBehind0001") == ["答复：第一条"], what="the first, late answer queued")


def test_a_bot_answering_within_the_budget_keeps_the_webhook_waiting(app, web, rasa, street, recorders):
    rasa.reply = lambda sender, text: [{"text": f"答复：{text}"}]
    answers = [post_text(web, f"oQuick000{n}", f"问题{n}", 70100 + n) for n in range(3)]
    assert all(f"答复：问题{n}" in answer for n, answer in enumerate(answers))
    assert outbox_bodies("oQuick0001") == []


def test_sms_waits_sms_bot_wait_then_queues_the_late_answer_when_it_comes(app, web, rasa, street, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_BOT_WAIT", 0.2)
    rasa.delay = 1.0
    rasa.reply = lambda sender, text: [{"text": "请带身份证到社区服务中心。"}]

    response = signed_post(web, "/sms", sms("SMwait0001", "补办社保卡"))
    assert response.status_code == 200 and response.get_data(as_text=True).endswith("<Response></Response>")
    # Answered before the bot was done: the message is kept and marked until its answer is queued.
    message = db.session.scalar(select(Message).where(Message.external_id == "SMwait0001"))
    assert message is not None and message.late_answer_due_at is not None and outbox_bodies(PHONE) == []

    wait_until(lambda: outbox_bodies(PHONE) == ["请带身份证到社区服务中心。"], what="the late SMS answer queued")
    # The mark is cleared right after the answer's rows are committed.
    wait_until(lambda: db.session.scalar(select(Message.late_answer_due_at).where(Message.id == message.id)) is None,
               what="the message's late mark cleared")
    assert len(rasa.turns) == 1


def test_with_the_guard_off_every_message_waits_its_budget(app, web, slow_bot, street, recorders, monkeypatch):
    monkeypatch.setitem(app.config, "BOT_BEHIND_SECONDS", 0.0)
    assert post_text(web, "oGuardOff01", "第一条", 70201) == "success"
    slow_bot.delay = 0.05
    assert "请选择科室" in post_text(web, "oGuardOff02", "第二条", 70202)
    wait_until(lambda: outbox_bodies("oGuardOff01") == ["请选择科室"], what="the first, late answer queued")
