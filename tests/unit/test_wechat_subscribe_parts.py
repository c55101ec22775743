"""Subscribe messages without the network: the events' <List> records, the template setting, the recording sender."""
from __future__ import annotations

import json

import pytest

from app.channels.wechat_envelope import parse_xml
from app.core.config import ConfigError, Settings
from app.services.outbox.subscriptions import template_for
from integrations.wechat import RecordedWeChatMessage, RecordingWeChatSender, WeChatApiError

POPUP = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>"
         "<CreateTime>1610969440</CreateTime><MsgType><![CDATA[event]]></MsgType>"
         "<Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent>"
         "<List><TemplateId><![CDATA[tplA]]></TemplateId><SubscribeStatusString><![CDATA[accept]]>"
         "</SubscribeStatusString><PopupScene>2</PopupScene></List>"
         "<List><TemplateId><![CDATA[tplB]]></TemplateId><SubscribeStatusString><![CDATA[reject]]>"
         "</SubscribeStatusString><PopupScene>2</PopupScene></List>"
         "</SubscribeMsgPopupEvent></xml>")


def test_the_list_records_of_a_popup_event_are_read_in_order():
    fields = parse_xml(POPUP)
    assert fields["Event"] == "subscribe_msg_popup_event"
    assert json.loads(fields["SubscribeMsgPopupEvent"]) == [
        {"TemplateId": "tplA", "SubscribeStatusString": "accept", "PopupScene": "2"},
        {"TemplateId": "tplB", "SubscribeStatusString": "reject", "PopupScene": "2"},
    ]


@pytest.mark.parametrize("raw", ["{not json", '["tplA"]'])
def test_a_malformed_template_setting_is_refused_at_start(monkeypatch, raw):
    monkeypatch.setenv("WECHAT_SUBSCRIBE_TEMPLATES", raw)
    with pytest.raises(ConfigError, match="WECHAT_SUBSCRIBE_TEMPLATES"):
        Settings.from_env()


def test_templates_are_configured_by_key_with_or_without_a_keyword_map(app, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_SUBSCRIBE_TEMPLATES", json.dumps({
        "booking_reminder": {"id": "tplR", "fields": {"thing1": "patient", "time2": "time"}},
        "help_update": "tplH",
    }))
    with app.app_context():
        reminder, update, unknown = template_for("booking_reminder"), template_for("help_update"), template_for("x")
    assert unknown is None
    assert reminder.template_id == "tplR"
    # WeChat takes at most 20 characters in a `thing` keyword: longer values are cut, not refused.
    assert reminder.data({"patient": "张" * 25, "time": "2031年03月12日 09:00", "other": "ignored"}) == {
        "thing1": {"value": "张" * 19 + "…"}, "time2": {"value": "2031年03月12日 09:00"}}
    assert update.data({"thing1": "王阿姨"}) == {"thing1": {"value": "王阿姨"}}


def test_recording_sender_sends_a_subscribe_message_only_within_a_grant():
    sender = RecordingWeChatSender()
    with pytest.raises(WeChatApiError) as refused:
        sender.send_subscribe("oUser", "tplA", {"thing1": {"value": "x"}})
    assert refused.value.no_grant
    sender.grant("oUser", "tplA")
    sender.send_subscribe("oUser", "tplA", {"thing1": {"value": "x"}}, page="p")
    assert sender.sent == [RecordedWeChatMessage(openid="oUser", kind="subscribe", template_id="tplA",
                                                 data={"thing1": {"value": "x"}}, page="p")]
    with pytest.raises(WeChatApiError):
        sender.send_subscribe("oUser", "tplA", {"thing1": {"value": "x"}})
