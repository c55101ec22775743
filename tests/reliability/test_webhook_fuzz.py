"""Hostile bodies on the vendor webhooks (hypothesis): the WeChat XML parser and envelope, and Twilio's SMS forms.

WeChat's plain-mode signature covers only token, timestamp and nonce, never the body: anyone holding one signed
URL can post any body to it for five minutes. Twilio's signature covers the form, but a request signed with the
right token is still just bytes someone chose. So every body here is signed properly and must reach the handler;
whatever it holds, the answer is a reply, "success" or a 4xx, never a 500, and nothing crashes.
"""
from __future__ import annotations

import secrets
import string
import time
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto

from app.channels import wechat_envelope
from app.channels.wechat_envelope import RejectedRequest, parse_xml, signature_of
from app.core import transports
from integrations.rasa import ScriptedBot
from integrations.twilio import RecordingTwilioTransport
from integrations.wechat import RecordingWeChatSender
from tests.reliability.support import PUBLIC, TWILIO_TOKEN, request_scoped_client, twilio_signature

TOKEN = "test-wechat-token"  # tests/conftest.py TEST_SETTINGS
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx1234567890abcdef"
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text a resident (or an attacker) could put in a field: CJK, emoji, XML metacharacters, CDATA terminators,
# control characters, lone surrogates are impossible in UTF-8 so they are left out by the codec.
field_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.sampled_from([
    "]]>", "<![CDATA[x]]>", "&amp;", "&lt;xml&gt;", "挂号", "转人工", "\u202e反转", "😀" * 30, " ", "\t\n",
    "A" * 5000, "1" * 100, "-1", "9" * 40, "0x1F", "NaN",
])
tag = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
                       "EventKey", "Recognition", "MediaId", "Encrypt"]) | st.text(string.ascii_letters, min_size=1,
                                                                                    max_size=12)
msg_type = st.sampled_from(["text", "voice", "event", "image", "location", "link", "video", "shortvideo", "file",
                            "music", "TEXT", "Event", ""]) | field_text
event = st.sampled_from(["subscribe", "unsubscribe", "click", "CLICK", "VIEW", "LOCATION", "scan"]) | field_text


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@st.composite
def wechat_documents(draw) -> bytes:
    """Mostly well-formed WeChat messages with hostile values; sometimes a field missing, doubled or unknown."""
    fields = {
        "ToUserName": draw(st.just("gh_linli") | field_text),
        "FromUserName": draw(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=70)
                             | field_text),
        "CreateTime": draw(st.integers(min_value=-2**70, max_value=2**70).map(str) | field_text),
        "MsgType": draw(msg_type),
        "Content": draw(field_text),
        "MsgId": draw(st.integers(min_value=-2**70, max_value=2**70).map(str) | field_text),
        "Event": draw(event),
        "EventKey": draw(st.sampled_from(["ONE_KEY_HELP", "MY_APPOINTMENTS", "TALK_TO_STAFF"]) | field_text),
        "Recognition": draw(field_text),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        fields.pop(name, None)
    extra = draw(st.lists(st.tuples(tag, field_text), max_size=3))
    parts = [f"<{k}>{_cdata(v) if draw(st.booleans()) else _escape(v)}</{k}>" for k, v in fields.items()]
    parts += [f"<{k}>{_cdata(v)}</{k}>" for k, v in extra]
    if draw(st.booleans()):
        parts = draw(st.permutations(parts))
    return ("<xml>" + "".join(parts) + "</xml>").encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HOSTILE_XML = [
    # entity expansion ("billion laughs") and external entities (XXE): refused, never expanded or fetched
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b"<xml><Content>&b;</Content></xml>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd"><xml/>',
    b"<xml><Content>\x00</Content></xml>",
    b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>",
    b"\xff\xfe<\x00x\x00m\x00l\x00>\x00",
    b"",
    b"<xml",
    b"<notxml><Content>x</Content></notxml>",
]


# --- the parser alone -------------------------------------------------------------------------------------

@FUZZ
@given(body=st.binary(max_size=2000) | wechat_documents() | st.sampled_from(HOSTILE_XML))
def test_parse_xml_returns_fields_or_refuses_with_400_and_never_raises_anything_else(body):
    try:
        fields = parse_xml(body)
    except RejectedRequest as exc:
        assert exc.status == 400
        return
    assert isinstance(fields, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@pytest.mark.parametrize("body", HOSTILE_XML[:3])
def test_entities_and_doctypes_are_refused_not_expanded(body):
    with pytest.raises(RejectedRequest) as refused:
        parse_xml(body)
    assert refused.value.status == 400


# --- the whole webhook, signed ----------------------------------------------------------------------------

@pytest.fixture
def fakes(app):
    """A bot answering at once, and recording WeChat/Twilio transports; the previous ones restored afterwards."""
    current = transports.use(app)
    previous = (current.bot, current.wechat, current.twilio)
    transports.use(app, bot=ScriptedBot(default="好的，已收到。"), wechat=RecordingWeChatSender(),
                   twilio=RecordingTwilioTransport())
    yield
    transports.use(app, bot=previous[0], wechat=previous[1], twilio=previous[2])


@pytest.fixture
def web(app, committed, fakes):
    return request_scoped_client(app)


def _plain_query() -> str:
    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    return urlencode({"signature": signature_of(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce})


def _assert_answer_is_clean(response) -> None:
    assert response.status_code in (200, 400, 403, 413), (response.status_code, response.get_data(as_text=True))
    if response.status_code == 200:
        body = response.get_data(as_text=True)
        assert body == wechat_envelope.SUCCESS or parse_xml(body)  # a passive reply is well-formed XML


@FUZZ
@given(body=wechat_documents() | st.sampled_from(HOSTILE_XML))
def test_any_signed_plain_body_gets_a_reply_success_or_a_4xx_never_a_500(web, body):
    _assert_answer_is_clean(web.post("/wechat?" + _plain_query(), data=body, content_type="text/xml"))


def test_an_event_with_a_long_create_time_is_not_a_500(web):
    body = (b"<xml><ToUserName>gh_linli</ToUserName><FromUserName>oLongCreateTime</FromUserName><CreateTime>"
            + b"9" * 100 + b"</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>")
    _assert_answer_is_clean(web.post("/wechat?" + _plain_query(), data=body, content_type="text/xml"))


@FUZZ
@given(plaintext=wechat_documents(), tamper=st.sampled_from(["none", "base64", "truncate", "foreign_app"]))
def test_any_signed_encrypted_body_gets_a_reply_success_or_a_4xx_never_a_500(app, web, monkeypatch, plaintext,
                                                                                tamper):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)
    ts, nonce = str(int(time.time())), "fuzz"
    app_id = "wxsomeoneelse00000" if tamper == "foreign_app" else APP_ID
    envelope = WeChatCrypto(TOKEN, AES_KEY, app_id).encrypt_message(plaintext.decode(), nonce, ts)
    encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    if tamper == "base64":
        encrypted = "!" + encrypted[1:]
    elif tamper == "truncate":
        encrypted = encrypted[: len(encrypted) // 2]
    body = f"<xml><ToUserName><![CDATA[gh_linli]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    query = urlencode({"signature": signature_of(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
                       "encrypt_type": "aes", "msg_signature": signature_of(TOKEN, ts, nonce, encrypted)})
    _assert_answer_is_clean(web.post("/wechat?" + query, data=body, content_type="text/xml"))


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "echostr", "msg_signature",
                                              "encrypt_type", "openid"]), field_text, max_size=6))
def test_any_query_on_the_url_check_or_a_post_is_refused_cleanly(web, query):
    check = web.get("/wechat", query_string=query)
    assert check.status_code in (200, 400, 403), check.get_data(as_text=True)
    post = web.post("/wechat", query_string=query, data=b"<xml/>", content_type="text/xml")
    assert post.status_code in (400, 403), post.get_data(as_text=True)


# --- Twilio's SMS form, signed with the account's token ---------------------------------------------------

sms_value = field_text | st.sampled_from(["+8613912345678", "+1" + "5" * 30, "STOP", "1", "是", ""])


@st.composite
def sms_forms(draw) -> dict:
    form = {
        "MessageSid": draw(st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True) | field_text),
        "From": draw(sms_value),
        "To": draw(sms_value),
        "Body": draw(field_text),
        "NumSegments": draw(st.integers(-5, 50).map(str) | field_text),
        "AccountSid": "AC" + "0" * 32,
    }
    for name in draw(st.lists(st.sampled_from(sorted(form)), max_size=2)):
        form.pop(name, None)
    form.update(draw(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=10), field_text,
                                     max_size=3)))
    return form


@pytest.fixture
def twilio_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TWILIO_TOKEN)


def _post_signed(web, path: str, form: dict):
    return web.post(path, data=form, headers={"X-Twilio-Signature": twilio_signature(PUBLIC + path, form)})


def _assert_twiml_or_4xx(response) -> None:
    assert response.status_code in (200, 400, 422), (response.status_code, response.get_data(as_text=True))
    if response.status_code == 200:
        assert response.get_data(as_text=True).endswith("<Response></Response>")


@FUZZ
@given(form=sms_forms())
def test_any_signed_sms_form_gets_empty_twiml_or_a_4xx_never_a_500(web, twilio_token, form):
    _assert_twiml_or_4xx(_post_signed(web, "/sms", form))


@FUZZ
@given(form=st.fixed_dictionaries({"MessageSid": sms_value, "MessageStatus": st.sampled_from(
    ["delivered", "failed", "undelivered", "sent", "queued"]) | field_text},
    optional={"ErrorCode": st.sampled_from(["21610", "30003", ""]) | field_text}))
def test_any_signed_status_callback_is_accepted_or_refused_never_a_500(web, twilio_token, form):
    response = _post_signed(web, "/sms/status", form)
    assert response.status_code in (204, 400, 422), (response.status_code, response.get_data(as_text=True))


@FUZZ
@given(form=sms_forms(), signature=st.text(string.ascii_letters + string.digits + "+/=", max_size=40))
def test_an_sms_form_with_a_wrong_signature_is_403(web, twilio_token, form, signature):
    assert web.post("/sms", data=form, headers={"X-Twilio-Signature": signature}).status_code == 403


def test_an_sms_from_a_long_sender_id_is_not_a_500(web, twilio_token):
    _assert_twiml_or_4xx(_post_signed(web, "/sms", {"MessageSid": "SM1", "From": "+1" + "5" * 30, "Body": "你好"}))


@pytest.mark.parametrize("path, form", [
    ("/sms", {"MessageSid": "SM2", "From": "+8613912345678", "Body": "你\x00好"}),
    ("/sms", {"MessageSid": "SM\x003", "From": "+8613912345678", "Body": "你好"}),
    ("/sms/status", {"MessageSid": "SM\x004", "MessageStatus": "delivered"}),
])
def test_a_nul_character_in_an_sms_field_is_not_a_500(web, twilio_token, path, form):
    assert _post_signed(web, path, form).status_code < 500
