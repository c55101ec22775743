"""The WeChat webhook end to end on the test client: who may call it, what it answers, when the bot speaks."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Message, Resident, Ticket
from app.services.conversations import wechat_menu
from tests.helpers.wechat import (
    AES_KEY,
    APP_ID,
    TOKEN,
    decrypt_reply,
    event_xml,
    message_xml,
    plain_query,
    post_encrypted,
    post_plain,
    sign,
    text_xml,
)

OPENID = "oWeChatResident0001"


def inbound_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Message.id)).where(Message.direction == "in"))


def test_url_check_echoes_echostr_only_with_a_valid_signature(web):
    ts, nonce = str(int(time.time())), "abc"
    ok = web.get(f"/wechat?signature={sign(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&echostr=hello")
    assert ok.status_code == 200 and ok.data == b"hello"
    forged = web.get(f"/wechat?signature={'0' * 40}&timestamp={ts}&nonce={nonce}&echostr=hello")
    assert forged.status_code == 403 and b"hello" not in forged.data


def test_text_message_gets_the_bots_answer_as_a_passive_reply_and_both_are_stored(web, rasa, street):
    response = post_plain(web, text_xml(OPENID, "社保怎么办", 1001))

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<Content><![CDATA[收到：社保怎么办]]></Content>" in body
    assert f"<ToUserName><![CDATA[{OPENID}]]></ToUserName>" in body
    assert len(rasa.turns) == 1 and rasa.turns[0][1] == "社保怎么办"
    authors = [m.author for m in db.session.scalars(select(Message).order_by(Message.id))]
    assert authors == ["resident", "bot"]


def test_several_bot_messages_are_joined_into_one_passive_reply_in_order(web, rasa, street):
    rasa.reply = lambda sender, text: [{"text": "第一条"}, {"text": "第二条", "buttons": [{"title": "挂号"}]}]
    body = post_plain(web, text_xml(OPENID, "你好", 1002)).get_data(as_text=True)
    assert "第一条\n\n第二条\n1. 挂号" in body


def test_encrypted_message_is_decrypted_and_answered_encrypted(app, web, rasa, street, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)

    response = post_encrypted(web, text_xml(OPENID, "加密的问题", 2001))

    assert response.status_code == 200
    assert "<Encrypt>" in response.get_data(as_text=True)
    assert "收到：加密的问题" in decrypt_reply(response.get_data(as_text=True))
    assert rasa.turns == [(rasa.turns[0][0], "加密的问题")]


def test_encrypted_message_for_another_app_id_is_refused(app, web, rasa, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)
    response = post_encrypted(web, text_xml(OPENID, "hi", 2002), app_id="wxSomeoneElse000000")
    assert response.status_code == 403
    assert rasa.turns == [] and inbound_count() == 0


def test_plaintext_message_is_refused_in_safe_mode(app, web, rasa, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)
    assert post_plain(web, text_xml(OPENID, "hi", 2003)).status_code == 400
    assert rasa.turns == []


XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       f'<xml><ToUserName>a</ToUserName><FromUserName>{OPENID}</FromUserName><CreateTime>1</CreateTime>'
       '<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>3</MsgId></xml>')
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
                  '<xml><Content>&b;</Content></xml>')


@pytest.mark.parametrize("case, make_request, status", [
    ("forged signature", lambda c: c.post("/wechat?" + plain_query(token="not-our-token"),
                                          data=text_xml(OPENID, "hi", 4001), content_type="text/xml"), 403),
    ("no signature", lambda c: c.post("/wechat", data=text_xml(OPENID, "hi", 4002), content_type="text/xml"), 400),
    ("stale timestamp", lambda c: post_plain(c, text_xml(OPENID, "hi", 4003), timestamp=int(time.time()) - 600), 403),
    ("future timestamp", lambda c: post_plain(c, text_xml(OPENID, "hi", 4004), timestamp=int(time.time()) + 600),
     403),
    ("malformed xml", lambda c: post_plain(c, "<xml><ToUserName>oops</xml"), 400),
    ("not xml at all", lambda c: post_plain(c, b"\x00\xff garbage"), 400),
    ("external entity", lambda c: post_plain(c, XXE), 400),
    ("entity expansion", lambda c: post_plain(c, BILLION_LAUGHS), 400),
    ("missing fields", lambda c: post_plain(c, "<xml><MsgType>text</MsgType></xml>"), 400),
    ("oversized body", lambda c: post_plain(c, text_xml(OPENID, "长" * 30000, 4005)), 413),
])
def test_hostile_or_broken_requests_get_4xx_and_no_bot_turn(web, rasa, case, make_request, status):
    response = make_request(web)
    assert response.status_code == status, case
    assert rasa.turns == [] and inbound_count() == 0


def test_unknown_message_type_gets_a_polite_answer_and_no_bot_turn(web, rasa, street):
    body = post_plain(web, message_xml(OPENID, "hologram", 5001)).get_data(as_text=True)
    assert wechat_menu.CAPABILITIES in body
    assert rasa.turns == []


@pytest.mark.parametrize("msg_type, extra", [
    ("image", "<PicUrl><![CDATA[http://x/y.jpg]]></PicUrl><MediaId><![CDATA[m]]></MediaId>"),
    ("location", "<Location_X>31.2</Location_X><Location_Y>121.4</Location_Y><Scale>15</Scale>"),
    ("link", "<Title><![CDATA[t]]></Title><Url><![CDATA[http://x]]></Url>"),
])
def test_images_locations_and_links_get_what_the_account_can_do(web, rasa, street, msg_type, extra):
    body = post_plain(web, message_xml(OPENID, msg_type, 5100, extra)).get_data(as_text=True)
    assert wechat_menu.CAPABILITIES in body and rasa.turns == []


def test_voice_with_recognition_goes_to_the_bot_and_without_asks_to_type(web, rasa, street):
    with_text = post_plain(web, message_xml(OPENID, "voice", 5201, "<Recognition><![CDATA[我要挂号]]></Recognition>"))
    assert "收到：我要挂号" in with_text.get_data(as_text=True)
    without = post_plain(web, message_xml(OPENID, "voice", 5202, "<Recognition><![CDATA[]]></Recognition>"))
    assert wechat_menu.ASK_TO_TYPE in without.get_data(as_text=True)
    assert len(rasa.turns) == 1


def test_subscribe_welcomes_and_unsubscribe_stops_sending(web, rasa, street):
    welcome = post_plain(web, event_xml(OPENID, "subscribe", create_time=1700000000))
    assert "欢迎关注" in welcome.get_data(as_text=True)
    bye = post_plain(web, event_xml(OPENID, "unsubscribe", create_time=1700000100))
    assert bye.get_data(as_text=True) == "success"
    resident = db.session.scalar(select(Resident))
    assert resident.wechat_subscribed is False
    assert rasa.turns == []


def test_menu_talk_to_staff_opens_a_ticket_and_then_the_bot_stays_silent(web, rasa, street):
    answer = post_plain(web, event_xml(OPENID, "CLICK", "TALK_TO_STAFF", create_time=1700000200))
    assert wechat_menu.STAFF_CALLED in answer.get_data(as_text=True)
    ticket = db.session.scalar(select(Ticket))
    assert ticket.status == "open" and ticket.source == "resident"

    first = post_plain(web, text_xml(OPENID, "我家水管坏了", 6001)).get_data(as_text=True)
    second = post_plain(web, text_xml(OPENID, "什么时候来", 6002)).get_data(as_text=True)
    assert "已转给人工客服" in first
    assert second == "success"  # the notice is said once
    assert rasa.turns == []
    assert [e.kind for e in ticket.events].count("message_in") == 2


def test_menu_one_key_help_raises_an_alert_or_an_urgent_ticket(web, rasa, street):
    answer = post_plain(web, event_xml(OPENID, "CLICK", "ONE_KEY_HELP", create_time=1700000300))
    assert wechat_menu.HELP_RAISED in answer.get_data(as_text=True)
    assert rasa.turns == []


def test_menu_my_appointments_lists_none_for_a_new_resident(web, rasa, street):
    answer = post_plain(web, event_xml(OPENID, "CLICK", "MY_APPOINTMENTS", create_time=1700000400))
    assert wechat_menu.NO_APPOINTMENTS in answer.get_data(as_text=True)


def test_bot_down_gives_an_apology_keeps_the_message_and_opens_a_ticket(web, rasa, street):
    rasa.status = 503
    body = post_plain(web, text_xml(OPENID, "低保怎么申请", 7001)).get_data(as_text=True)
    assert "暂时无法回答" in body
    assert inbound_count() == 1
    ticket = db.session.scalar(select(Ticket))
    assert ticket.source == "bot" and "低保怎么申请" in ticket.subject


def test_a_flood_from_one_sender_is_stored_but_not_answered_by_the_bot(app, web, rasa, street, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_ENABLED", True)
    monkeypatch.setitem(app.config, "SENDER_RATE_LIMIT", "3/minute")
    answers = [post_plain(web, text_xml(OPENID, f"第{n}条", 8000 + n)).get_data(as_text=True) for n in range(6)]

    assert all("收到" in a for a in answers[:3])  # the first messages always pass
    assert "太快" in answers[3] and answers[4] == answers[5] == "success"
    assert len(rasa.turns) == 3 and inbound_count() == 6
