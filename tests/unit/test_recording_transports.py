"""The recording transports and the scripted bot behave like the real ones as far as callers can tell."""
from __future__ import annotations

import time

import pytest

from integrations.rasa import BotUnavailable, ScriptedBot
from integrations.twilio import RecordingTwilioTransport, TwilioSendError, build_twilio_transport
from integrations.wechat import RecordedWeChatMessage, RecordingWeChatSender, WeChatApiError, build_wechat_sender


def test_recording_wechat_sender_keeps_texts_and_templates_in_order():
    sender = RecordingWeChatSender()
    sender.send_text("o1", "你好")
    data = {"first": {"value": "提醒"}}
    sender.send_template("o1", "TPL", data, url="https://linli.test/x")
    data["first"]["value"] = "changed later"  # the record is of what was sent, not a live reference

    assert sender.sent[0] == RecordedWeChatMessage(openid="o1", kind="text", text="你好")
    assert sender.sent[1].template_id == "TPL" and sender.sent[1].url == "https://linli.test/x"
    assert sender.sent[1].data == {"first": {"value": "提醒"}}
    assert sender.texts_to("o1") == ["你好"]


def test_recording_wechat_sender_raises_planned_errors_once_each_in_order():
    sender = RecordingWeChatSender()
    busy = WeChatApiError(-1, "system error")
    sender.fail_next(busy, WeChatApiError(45015, "window"))

    with pytest.raises(WeChatApiError) as first:
        sender.send_text("o1", "a")
    with pytest.raises(WeChatApiError) as second:
        sender.send_text("o1", "b")
    sender.send_text("o1", "c")

    assert first.value is busy and first.value.retryable
    assert second.value.outside_window
    assert sender.texts_to("o1") == ["c"]


def test_closed_window_refuses_customer_service_text_but_not_templates():
    sender = RecordingWeChatSender()
    sender.close_window("o1")

    with pytest.raises(WeChatApiError) as caught:
        sender.send_text("o1", "x")
    sender.send_template("o1", "TPL", {"k": {"value": "v"}})
    sender.open_window("o1")
    sender.send_text("o1", "back in the window")

    assert caught.value.errcode == 45015 and caught.value.outside_window
    assert [m.kind for m in sender.sent] == ["template", "text"]


def test_recording_twilio_transport_keeps_sms_and_calls_with_distinct_sids():
    transport = RecordingTwilioTransport()
    sms_sid = transport.send_sms("+8613800138000", "您好", status_callback="https://linli.test/sms/status")
    call_sid = transport.place_call("+8613800138001", "https://linli.test/twiml", "https://linli.test/status", 20)

    assert sms_sid.startswith("SM") and call_sid.startswith("CA")
    assert transport.sms[0].sid == sms_sid and transport.sms[0].status_callback == "https://linli.test/sms/status"
    assert transport.calls[0].to == "+8613800138001" and transport.calls[0].timeout_seconds == 20
    assert transport.sms_to("+8613800138000") == ["您好"]


def test_recording_twilio_transport_refuses_opted_out_numbers_for_sms_only():
    transport = RecordingTwilioTransport()
    transport.opt_out("+8613800138000")

    with pytest.raises(TwilioSendError) as caught:
        transport.send_sms("+8613800138000", "x")
    transport.place_call("+8613800138000", "https://linli.test/t", "https://linli.test/s")

    assert caught.value.opted_out and caught.value.code == 21610 and not caught.value.retryable
    assert transport.sms == [] and len(transport.calls) == 1


def test_recording_twilio_transport_raises_planned_errors_then_works():
    transport = RecordingTwilioTransport()
    transport.fail_next(TwilioSendError("down", status=503))

    with pytest.raises(TwilioSendError) as caught:
        transport.place_call("+8613800138000", "https://linli.test/t", "https://linli.test/s")
    transport.place_call("+8613800138000", "https://linli.test/t", "https://linli.test/s")

    assert caught.value.retryable
    assert len(transport.calls) == 1


@pytest.mark.parametrize("error, retryable", [
    (TwilioSendError("server", status=500), True),
    (TwilioSendError("slow down", code=20429, status=429), True),
    (TwilioSendError("timeout", transient=True), True),
    (TwilioSendError("bad number", code=21211, status=400), False),
    (TwilioSendError("auth", code=20003, status=401), False),
])
def test_twilio_errors_are_retryable_only_when_trying_again_can_help(error, retryable):
    assert error.retryable is retryable


@pytest.mark.parametrize("error, retryable", [
    (WeChatApiError(-1, "system error"), True),
    (WeChatApiError(None, "HTTP 502", http_status=502), True),
    (WeChatApiError(None, "ReadTimeout", transient=True), True),
    (WeChatApiError(45015, "window"), False),
    (WeChatApiError(40003, "invalid openid"), False),
    (WeChatApiError(None, "HTTP 404", http_status=404), False),
])
def test_wechat_errors_are_retryable_only_when_trying_again_can_help(error, retryable):
    assert error.retryable is retryable


def test_builders_fall_back_to_recording_without_credentials():
    assert isinstance(build_wechat_sender(app_id="", secret="", api_base="http://x/cgi-bin/", redis=None),
                      RecordingWeChatSender)
    assert isinstance(build_twilio_transport(account_sid="AC1", auth_token="", from_number="+15005550006"),
                      RecordingTwilioTransport)


def test_scripted_bot_answers_from_its_script_and_records_what_it_received():
    bot = ScriptedBot({"你好": "您好！", "菜单": ["挂号", {"text": "求助", "buttons": []}]}, default="没听懂")

    assert bot.send("conv-1", "你好") == [{"recipient_id": "conv-1", "text": "您好！"}]
    assert bot.send("conv-1", "菜单") == [{"recipient_id": "conv-1", "text": "挂号"}, {"text": "求助", "buttons": []}]
    assert bot.send("conv-1", "别的") == [{"recipient_id": "conv-1", "text": "没听懂"}]
    assert bot.received == [("conv-1", "你好"), ("conv-1", "菜单"), ("conv-1", "别的")]
    assert bot.status()


def test_scripted_bot_with_a_callable_and_an_empty_answer():
    bot = ScriptedBot(lambda sender, text: text.upper())
    silent = ScriptedBot()

    assert bot.send("s", "abc") == [{"recipient_id": "s", "text": "ABC"}]
    assert silent.send("s", "anything") == []


def test_scripted_bot_down_or_slower_than_the_timeout_is_unavailable():
    down = ScriptedBot({"hi": "hello"}, down=True)
    slow = ScriptedBot({"hi": "hello"}, delay=0.3)

    with pytest.raises(BotUnavailable):
        down.send("s", "hi")
    started = time.monotonic()
    with pytest.raises(BotUnavailable):
        slow.send("s", "hi", timeout=0.1)
    waited = time.monotonic() - started

    assert not down.status()
    assert 0.1 <= waited < 0.3  # gives up at the caller's timeout, as the real client does
    assert slow.send("s", "hi", timeout=1) == [{"recipient_id": "s", "text": "hello"}]
