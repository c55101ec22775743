"""Plain-mode WeChat: a signature covers token, timestamp and nonce, never the body.

So an attacker who captured one signed request (timestamp, nonce, signature) could post any body under it for the
whole 5-minute window: a message "from" any openid. The envelope now remembers each signature with a digest of
the body it came with for that window: the same body again is WeChat's retry (answered once, as before); another
body is refused. Safe mode, where the signature covers the encrypted body, needs no memory, and production
requires it (tests/security/test_production_mode.py).
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Message
from tests.helpers.wechat import TOKEN, sign, text_xml


def captured_query(nonce: str = "captured01") -> str:
    ts = str(int(time.time()))
    return urlencode({"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce})


def post(web, query: str, body: str):
    return web.post("/wechat?" + query, data=body, content_type="text/xml")


def messages_from(openid: str) -> int:
    """Inbound messages whose text carries the sender's marker (each test writes it into its texts)."""
    db.session.expire_all()
    return db.session.scalar(select(func.count(Message.id)).where(Message.direction == "in",
                                                                 Message.text.like(f"%{openid}%")))


def test_a_captured_signature_cannot_carry_another_body(web, rasa, street, recorders):
    query = captured_query()
    genuine = post(web, query, text_xml("oGenuineUser", "你好 oGenuineUser", 9001))
    assert genuine.status_code == 200
    forged = post(web, query, text_xml("oVictimUser", "转人工 oVictimUser", 9002))
    assert forged.status_code == 403
    assert messages_from("oVictimUser") == 0


def test_wechats_own_retry_of_the_same_request_still_goes_through(web, rasa, street, recorders):
    query = captured_query("retry0001")
    body = text_xml("oRetryUser", "你好 oRetryUser", 9101)
    assert post(web, query, body).status_code == 200
    assert post(web, query, body).status_code == 200  # the retry: answered, the message kept once
    assert messages_from("oRetryUser") == 1
