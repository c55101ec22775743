"""After a one-key-help menu tap WeChat takes only a few 客服 messages (45047 beyond them): the resident's updates
that 客服 can no longer carry go by the subscribe message they granted, else by SMS (issue 25), with the route on
the outbox row. Real wechatpy and twilio clients against the stubs on loopback."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Conversation, HelpAlert, OutboundMessage
from app.services.conversations import wechat_menu
from app.services.delivery import sending as delivery
from app.services.help import alerts as help_alerts
from app.services.help import escalation
from tests.factories import ChannelIdentityFactory, ResidentFactory
from tests.helpers.help import add_contact
from tests.helpers.wechat import ACCOUNT, event_xml, post_plain, real_clients

HELP_TPL = "tplHelpUpdate_tap45047"
TEMPLATES = {"help_update": {"id": HELP_TPL, "fields": {"thing1": "name", "thing2": "update", "time3": "time"}}}
OPENID = "oOneKeyHelpTap0000001"
PHONE = "+8613800004747"
KEFU = "/cgi-bin/message/custom/send"


@pytest.fixture
def stubs(app, web, wechat_stub, twilio_stub, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_SUBSCRIBE_TEMPLATES", json.dumps(TEMPLATES))
    wechat_stub.add_subscribe_template(HELP_TPL, "thing1", "thing2", "time3")
    with real_clients(app, wechat_stub, twilio_stub) as clients:
        yield clients


def tap_one_key_help(web, street):
    """An elderly resident with a chain of one (texted) taps 一键求助 in the official account's menu."""
    resident = ResidentFactory(is_elderly=True, name="李奶奶", phone=PHONE, community__street=street)
    ChannelIdentityFactory(resident=resident, channel="wechat", external_id=OPENID)
    db.session.commit()
    son = add_contact(resident.id, 1, channels="sms", name="儿子")
    answer = post_plain(web, event_xml(OPENID, "CLICK", "ONE_KEY_HELP"))
    assert wechat_menu.HELP_RAISED in answer.get_data(as_text=True)  # the passive reply: no 客服 spent
    alert = db.session.scalar(select(HelpAlert).where(HelpAlert.resident_id == resident.id))
    return resident, son, alert


def resident_updates(resident_id: int) -> list[OutboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(OutboundMessage).join(Conversation, Conversation.id == OutboundMessage.conversation_id)
        .where(Conversation.resident_id == resident_id, OutboundMessage.kind == "notice")
        .order_by(OutboundMessage.sequence)))


def deliver_all(rows: list[OutboundMessage]) -> None:
    for rid in [r.id for r in rows]:
        outcome = delivery.deliver(outbound_id=rid)
        if outcome == "rerouted":
            outcome = delivery.deliver(outbound_id=rid)
        assert outcome == "sent"


def run_alert_to_acceptance(alert, son) -> None:
    assert escalation.advance(alert_id=alert.id, round=1, step=0)  # the son is texted; the resident told "received"
    assert help_alerts.accept(alert_id=alert.id, via="sms", contact_id=son.id)  # the resident told who is coming


def test_updates_after_a_one_key_help_tap_beyond_wechats_kefu_limit_go_by_sms(stubs, web, street):
    wechat_stub, twilio_stub = stubs
    resident, son, alert = tap_one_key_help(web, street)
    wechat_stub.limit_kefu(OPENID, 1)  # after the tap WeChat takes one more 客服 message, then 45047

    run_alert_to_acceptance(alert, son)
    received, coming = resident_updates(resident.id)
    deliver_all([received, coming])

    received, coming = resident_updates(resident.id)
    assert (received.route, received.channel) == ("kefu", "wechat")
    assert (coming.route, coming.channel, coming.to_address) == ("sms", "sms", PHONE)
    assert "45047" in coming.last_error and "rerouted to SMS" in coming.last_error
    assert [c["response"]["errcode"] for c in wechat_stub.calls_to(KEFU)] == [0, 45047]
    assert [m["body"] for m in twilio_stub.sent_messages() if m["to"] == PHONE] == [coming.body]
    assert coming.body.startswith("儿子已接到您的求助")


def test_after_a_one_key_help_tap_a_granted_update_goes_by_subscribe_message_and_the_next_by_sms(stubs, web, street):
    wechat_stub, twilio_stub = stubs
    resident, son, alert = tap_one_key_help(web, street)
    wechat_stub.limit_kefu(OPENID, 0)  # WeChat's 客服 count for the tap is spent: 45047
    wechat_stub.grant_subscribe(OPENID, HELP_TPL)
    popup = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
             f"<CreateTime>1700004747</CreateTime><MsgType><![CDATA[event]]></MsgType>"
             f"<Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent><List>"
             f"<TemplateId><![CDATA[{HELP_TPL}]]></TemplateId><SubscribeStatusString><![CDATA[accept]]>"
             f"</SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent></xml>")
    assert post_plain(web, popup).get_data(as_text=True) == "success"

    run_alert_to_acceptance(alert, son)
    deliver_all(resident_updates(resident.id))

    received, coming = resident_updates(resident.id)
    assert received.route == "subscribe"
    (sent,) = wechat_stub.subscribe_messages()
    assert sent["touser"] == OPENID and sent["data"]["thing1"] == {"value": "李奶奶"}
    assert (coming.route, coming.to_address) == ("sms", PHONE) and "45047" in coming.last_error
    assert [m["body"] for m in twilio_stub.sent_messages() if m["to"] == PHONE] == [coming.body]
