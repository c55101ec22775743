"""The real twilio-python transport against the Twilio stub on loopback, and webhook signature checks."""
from __future__ import annotations

import time

import pytest
import requests
from flask import Flask, request

from integrations.twilio import (
    RecordingTwilioTransport,
    TwilioSendError,
    TwilioTransport,
    build_twilio_transport,
    validate_twilio_request,
)
from tests.conftest import free_port
from tests.stubs.server import ServerThread

RESIDENT = "+8613800138000"


def make_transport(stub, *, auth_token=None, timeout=2.0):
    return TwilioTransport(stub.account_sid, auth_token or stub.auth_token, stub.from_number, stub.base_url,
                           timeout=timeout)


def messages_path(stub) -> str:
    return f"/2010-04-01/Accounts/{stub.account_sid}/Messages.json"


def test_sms_is_posted_with_exactly_twilios_form_fields(twilio_stub):
    sid = make_transport(twilio_stub).send_sms(RESIDENT, "您的预约已确认：周三上午9点。",
                                               status_callback="https://linli.test/sms/status")

    (call,) = twilio_stub.calls
    assert call["method"] == "POST" and call["path"] == messages_path(twilio_stub)
    assert call["form"] == {"To": RESIDENT, "From": twilio_stub.from_number, "Body": "您的预约已确认：周三上午9点。",
                            "StatusCallback": "https://linli.test/sms/status"}
    assert call["auth"] == twilio_stub.account_sid
    assert call["status"] == 201
    assert sid == call["response"]["sid"] and sid.startswith("SM") and len(sid) == 34
    assert call["response"]["status"] == "queued"


def test_sms_without_status_callback_sends_no_such_field(twilio_stub):
    make_transport(twilio_stub).send_sms(RESIDENT, "hello")

    assert twilio_stub.calls[0]["form"] == {"To": RESIDENT, "From": twilio_stub.from_number, "Body": "hello"}


def test_long_chinese_sms_is_counted_in_ucs2_segments(twilio_stub):
    make_transport(twilio_stub).send_sms(RESIDENT, "邻" * 71)

    assert twilio_stub.sent_messages()[0]["num_segments"] == "2"


def test_opted_out_number_raises_opted_out_and_is_not_retryable(twilio_stub):
    twilio_stub.opt_out(RESIDENT)

    with pytest.raises(TwilioSendError) as caught:
        make_transport(twilio_stub).send_sms(RESIDENT, "x")

    assert caught.value.code == 21610 and caught.value.status == 400
    assert caught.value.opted_out and not caught.value.retryable
    assert twilio_stub.sent_messages() == []


def test_invalid_to_number_is_a_permanent_error(twilio_stub):
    with pytest.raises(TwilioSendError) as caught:
        make_transport(twilio_stub).send_sms("13800138000", "x")  # not E.164

    assert caught.value.code == 21211 and not caught.value.retryable and not caught.value.opted_out


@pytest.mark.parametrize("failure", [{"status": 500}, {"status": 503, "code": 20500}, {"status": 429, "code": 20429}])
def test_server_errors_and_rate_limits_are_retryable(twilio_stub, failure):
    twilio_stub.fail(**failure)

    with pytest.raises(TwilioSendError) as caught:
        make_transport(twilio_stub).send_sms(RESIDENT, "x")

    assert caught.value.status == failure["status"] and caught.value.retryable


def test_slow_twilio_gives_a_retryable_error_within_the_client_timeout(twilio_stub):
    twilio_stub.fail(sleep=5)

    started = time.monotonic()
    with pytest.raises(TwilioSendError) as caught:
        make_transport(twilio_stub, timeout=0.5).send_sms(RESIDENT, "x")

    assert time.monotonic() - started < 1.5
    assert caught.value.retryable and caught.value.status is None


def test_unreachable_twilio_is_retryable():
    transport = TwilioTransport("AC" + "0" * 32, "token", "+15005550006", f"http://127.0.0.1:{free_port()}", timeout=1)

    with pytest.raises(TwilioSendError) as caught:
        transport.send_sms(RESIDENT, "x")

    assert caught.value.retryable


def test_wrong_auth_token_is_refused_and_not_retried(twilio_stub):
    with pytest.raises(TwilioSendError) as caught:
        make_transport(twilio_stub, auth_token="f" * 32).send_sms(RESIDENT, "x")

    assert caught.value.status == 401 and caught.value.code == 20003 and not caught.value.retryable


def test_call_is_placed_with_url_status_callback_and_ring_timeout(twilio_stub):
    sid = make_transport(twilio_stub).place_call(RESIDENT, "https://linli.test/voice/alerts/7/twiml",
                                                 "https://linli.test/voice/status", timeout_seconds=25)

    (call,) = twilio_stub.calls
    assert call["path"] == f"/2010-04-01/Accounts/{twilio_stub.account_sid}/Calls.json"
    assert call["form"] == {"To": RESIDENT, "From": twilio_stub.from_number,
                            "Url": "https://linli.test/voice/alerts/7/twiml",
                            "StatusCallback": "https://linli.test/voice/status",
                            "StatusCallbackEvent": "completed", "Timeout": "25"}
    assert sid == call["response"]["sid"] and sid.startswith("CA")
    assert twilio_stub.placed_calls()[0]["status"] == "queued"


def test_call_to_an_opted_out_number_still_goes_through(twilio_stub):
    twilio_stub.opt_out(RESIDENT)  # STOP applies to messages only: an emergency call must still ring

    assert make_transport(twilio_stub).place_call(RESIDENT, "https://linli.test/t", "https://linli.test/s")


def test_build_twilio_transport_is_real_only_with_credentials(twilio_stub):
    assert isinstance(build_twilio_transport(account_sid="", auth_token="", from_number="",
                                             api_base=twilio_stub.base_url), RecordingTwilioTransport)
    real = build_twilio_transport(account_sid=twilio_stub.account_sid, auth_token=twilio_stub.auth_token,
                                  from_number=twilio_stub.from_number, api_base=twilio_stub.base_url)
    assert isinstance(real, TwilioTransport)
    real.send_sms(RESIDENT, "configured")
    assert len(twilio_stub.sent_messages()) == 1


@pytest.fixture
def webhook_receiver():
    """A tiny app that keeps each webhook it receives (public URL, form, signature)."""
    app = Flask("receiver")
    received: list[dict] = []

    @app.post("/sms/status")
    def status():
        received.append({"url": request.url, "form": request.form.copy(),
                         "signature": request.headers.get("X-Twilio-Signature")})
        return "", 204

    server = ServerThread(app).start()
    server.received = received
    yield server
    server.stop()


def test_signed_status_callback_is_accepted_and_forgeries_are_rejected(twilio_stub, webhook_receiver):
    callback_url = f"{webhook_receiver.base_url}/sms/status"
    sid = make_transport(twilio_stub).send_sms(RESIDENT, "x", status_callback=callback_url)

    assert twilio_stub.status_callback(sid, "delivered").status_code == 204

    (hook,) = webhook_receiver.received
    assert hook["form"]["MessageSid"] == sid and hook["form"]["MessageStatus"] == "delivered"
    token = twilio_stub.auth_token
    assert validate_twilio_request(token, hook["url"], hook["form"], hook["signature"])
    tampered = hook["form"].copy()
    tampered["MessageStatus"] = "undelivered"
    assert not validate_twilio_request(token, hook["url"], tampered, hook["signature"])
    assert not validate_twilio_request(token, hook["url"].replace("/sms/status", "/sms/other"), hook["form"],
                                       hook["signature"])
    assert not validate_twilio_request("0" * 32, hook["url"], hook["form"], hook["signature"])
    assert not validate_twilio_request(token, hook["url"], hook["form"], None)


def test_callbacks_can_be_fired_over_http_control(twilio_stub, webhook_receiver):
    callback_url = f"{webhook_receiver.base_url}/sms/status"
    answer = requests.post(f"{twilio_stub.base_url}/_stub/callback", timeout=5,
                           json={"url": callback_url, "params": {"MessageSid": "SM1", "MessageStatus": "sent"}})

    assert answer.json()["status"] == 204
    (hook,) = webhook_receiver.received
    assert validate_twilio_request(twilio_stub.auth_token, hook["url"], hook["form"], hook["signature"])
