"""The production setup of deploy/: nginx with deploy/nginx.conf in front of gunicorn with deploy/gunicorn.conf.py
(sync workers). Signed webhooks pass through the proxy and still verify, and clients that connect and then send
nothing hold nginx connections, not the app's workers."""
from __future__ import annotations

import os
import shutil
import signal
import socket
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from app.core.extensions import db
from app.models import Message, OutboundMessage
from tests.conftest import server_env
from tests.reliability.support import signed_wechat_query, wait_until, wechat_text
from tests.servers import free_port, healthy, start_gunicorn, start_nginx

TWILIO_TOKEN = "production-setup-twilio-token"
PHONE = "+8613912340000"


@pytest.fixture
def front(app, committed, street, rasa):
    """The base URL of nginx in front of one production gunicorn worker, whose bot is the Rasa stub."""
    if shutil.which("nginx") is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: `make test` installs it (apt package nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light; `make test` installs it)")
    nginx_port = free_port()
    base = f"http://127.0.0.1:{nginx_port}"
    env = server_env(app, RASA_URL=rasa.url, PUBLIC_BASE_URL=base, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    web, app_port = start_gunicorn("production", env, workers=1)
    nginx, _ = start_nginx(app_port, nginx_port)
    try:
        wait_until(lambda: healthy(base + "/healthz"), timeout=30, what="the app answering through nginx")
        yield base
    finally:
        nginx.terminate()
        os.killpg(web.pid, signal.SIGTERM)
        nginx.wait(10)
        web.wait(30)


def post_wechat(base: str, openid: str, text: str, msg_id: int) -> str:
    request = Request(base + "/wechat?" + signed_wechat_query(), data=wechat_text(openid, text, msg_id),
                      headers={"Content-Type": "text/xml"})
    return urlopen(request, timeout=10).read().decode()


def test_signed_webhooks_pass_through_nginx_and_are_answered(front, rasa):
    assert "收到：社保卡怎么补办" in post_wechat(front, "oProduction01", "社保卡怎么补办", 81001)

    # Twilio signs the public URL (PUBLIC_BASE_URL, nginx's address here) and nginx passes the signature on.
    params = {"MessageSid": "SMprod0001", "From": PHONE, "To": "+15005550006", "Body": "你好"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(front + "/sms", params)
    request = Request(front + "/sms", data=urlencode(params).encode(),
                      headers={"X-Twilio-Signature": signature,
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert urlopen(request, timeout=10).status == 200
    db.session.expire_all()
    assert db.session.scalars(select(OutboundMessage.body).where(OutboundMessage.to_address == PHONE)).all() \
        == ["收到：你好"]
    assert len(rasa.turns) == 2


def test_clients_that_connect_and_send_nothing_do_not_hold_the_one_worker(front, rasa):
    host, port = front.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(3)]
    try:
        # One request begun and never finished; the other connections left silent.
        idle[0].sendall(b"POST /wechat HTTP/1.1\r\nHost: linli\r\nContent-Length: 100\r\n\r\n<xml>")
        assert "收到：我要挂号" in post_wechat(front, "oProduction02", "我要挂号", 81002)
    finally:
        for sock in idle:
            sock.close()


def test_forged_webhooks_through_nginx_get_403_and_change_nothing(front, rasa):
    forged_wechat = Request(front + "/wechat?" + signed_wechat_query(token="not-the-accounts-token"),
                            data=wechat_text("oProduction03", "伪造", 81003), headers={"Content-Type": "text/xml"})
    params = {"MessageSid": "SMforged01", "From": PHONE, "To": "+15005550006", "Body": "伪造"}
    # Signed with the right token, but for the app's own address rather than the public one nginx serves.
    forged_sms = Request(front + "/sms", data=urlencode(params).encode(), headers={
        "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature("http://127.0.0.1:5000/sms", params),
        "Content-Type": "application/x-www-form-urlencoded"})
    for request in (forged_wechat, forged_sms):
        with pytest.raises(HTTPError) as refused:
            urlopen(request, timeout=10)
        assert refused.value.code == 403
    db.session.expire_all()
    assert db.session.scalar(select(Message.id)) is None
    assert rasa.turns == []
