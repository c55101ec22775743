"""The WeChat envelope without the network or the database: signatures, replay window, safe XML, safe mode."""
from __future__ import annotations

import time

import pytest
from wechatpy.crypto import WeChatCrypto

from app.channels.wechat_envelope import RejectedRequest, open_envelope, parse_xml, passive_reply, signature_of

TOKEN, AES_KEY, APP_ID = "test-wechat-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1234567890abcdef"
MESSAGE = ("<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName><CreateTime>1</CreateTime>"
           "<MsgType>text</MsgType><Content>你好</Content><MsgId>42</MsgId></xml>")


@pytest.fixture
def ctx(app, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", "")
    with app.app_context():
        yield app


def plain_query(ts=None, nonce="n"):
    ts = str(ts or int(time.time()))
    return {"signature": signature_of(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}


def test_plaintext_message_fields_are_read(ctx):
    fields = open_envelope(query=plain_query(), body=MESSAGE.encode())
    assert fields["Content"] == "你好" and fields["MsgId"] == "42"


@pytest.mark.parametrize("query, status", [
    ({"signature": "f" * 40}, 403),
    ({"timestamp": str(int(time.time()) - 301)}, 403),
    ({"timestamp": "yesterday"}, 400),
])
def test_bad_signature_or_time_is_rejected(ctx, query, status):
    good = plain_query()
    if "timestamp" in query and query["timestamp"].isdigit():
        good = plain_query(ts=int(query["timestamp"]))  # correctly signed, but too old: a replay
    else:
        good.update(query)
    with pytest.raises(RejectedRequest) as err:
        open_envelope(query=good, body=MESSAGE.encode())
    assert err.value.status == status


@pytest.mark.parametrize("xml", [
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    '<!DOCTYPE x [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
    "<xml><Content>unclosed</xml>",
    "<notxml/>",
])
def test_unsafe_or_malformed_xml_is_refused(xml):
    with pytest.raises(RejectedRequest) as err:
        parse_xml(xml)
    assert err.value.status == 400


def test_safe_mode_round_trip_with_wechatpys_crypto(ctx, monkeypatch):
    monkeypatch.setitem(ctx.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(ctx.config, "WECHAT_APP_ID", APP_ID)
    ts, nonce = str(int(time.time())), "nonce1"
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(MESSAGE, nonce, ts)
    encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
             "msg_signature": signature_of(TOKEN, ts, nonce, encrypted)}

    fields = open_envelope(query=query, body=envelope.encode())
    assert fields["Content"] == "你好"

    reply = passive_reply(fields, "收到]]>了")
    assert "<Encrypt>" in reply and "收到" not in reply
    tampered = dict(query, msg_signature=signature_of(TOKEN, ts, nonce, encrypted + "x"))
    with pytest.raises(RejectedRequest):
        open_envelope(query=tampered, body=envelope.encode())


def test_plaintext_passive_reply_is_addressed_back_to_the_sender(ctx):
    reply = passive_reply({"ToUserName": "gh_1", "FromUserName": "oUser"}, "好的")
    assert parse_xml(reply) | {} == {**parse_xml(reply), "ToUserName": "oUser", "FromUserName": "gh_1",
                                      "MsgType": "text", "Content": "好的"}
