"""Helpers for the channel tests (no tests here): signed WeChat requests, a Rasa REST stub, transports."""
from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from app.core import transports
from app.core.redis_client import get_redis
from integrations.twilio import TwilioTransport
from integrations.wechat import WeChatClientSender

TOKEN = "test-wechat-token"  # tests/conftest.py TEST_SETTINGS
ACCOUNT = "gh_linli_account"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx1234567890abcdef"


@contextmanager
def real_clients(app, wechat_stub, twilio_stub, *, timeout: float = 2):
    """The app's WeChat and Twilio transports are the real clients, aimed at the stubs; the previous ones put back."""
    current = transports.use(app)
    previous = (current.wechat, current.twilio)
    with app.app_context():
        redis = get_redis()
    transports.use(app, wechat=WeChatClientSender(wechat_stub.app_id, wechat_stub.secret, wechat_stub.api_base,
                                                  redis, timeout=timeout),
                   twilio=TwilioTransport(twilio_stub.account_sid, twilio_stub.auth_token, twilio_stub.from_number,
                                          twilio_stub.base_url, timeout=timeout))
    try:
        yield wechat_stub, twilio_stub
    finally:
        transports.use(app, wechat=previous[0], twilio=previous[1])


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def text_xml(openid: str, content: str, msg_id: str | int, *, create_time: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def message_xml(openid: str, msg_type: str, msg_id: str | int, extra: str = "") -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{extra}"
            f"<MsgId>{msg_id}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str = "", *, create_time: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>")


def plain_query(*, timestamp: int | None = None, nonce: str | None = None, token: str = TOKEN) -> str:
    """A freshly signed query, with a nonce of its own as WeChat sends (a signature carries one body only)."""
    ts = str(timestamp or int(time.time()))
    nonce = nonce or secrets.token_hex(8)
    return urlencode({"signature": sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": "x"})


def post_plain(client, xml: str | bytes, **query):
    return client.post("/wechat?" + plain_query(**query), data=xml, content_type="text/xml")


def post_encrypted(client, xml: str, *, app_id: str = APP_ID, nonce: str = "n0nce"):
    """Encrypted and signed by wechatpy's own crypto, as WeChat's servers do in safe mode."""
    ts = str(int(time.time()))
    envelope = WeChatCrypto(TOKEN, AES_KEY, app_id).encrypt_message(xml, nonce, ts)
    encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = urlencode({"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
                       "encrypt_type": "aes", "msg_signature": sign(TOKEN, ts, nonce, encrypted)})
    return client.post("/wechat?" + query, data=envelope, content_type="text/xml")


def decrypt_reply(body: str) -> str:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    fields = {k: body.split(f"<{k}>")[1].split(f"</{k}>")[0] for k in ("MsgSignature", "TimeStamp", "Nonce")}
    sig = fields["MsgSignature"].replace("<![CDATA[", "").replace("]]>", "")
    nonce = fields["Nonce"].replace("<![CDATA[", "").replace("]]>", "")
    return crypto.decrypt_message(body, sig, fields["TimeStamp"], nonce)


class RasaStub:
    """Rasa's REST channel on loopback: answers `reply(sender, text)` after `delay`, counts every turn.

    Its NLU (`/model/parse`) answers `intent(text)`: an intent name, or None for a 500 refusing that text.
    """

    def __init__(self, reply=None, *, delay: float = 0.0, status: int = 200, intent=None):
        self.reply = reply or (lambda sender, text: [{"recipient_id": sender, "text": f"收到：{text}"}])
        self.intent = intent or (lambda text: "greet")
        self.delay = delay
        self.status = status
        self.turns: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (Rasa's root URL: the status check)
                self._answer(200, b"Hello from Rasa")

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/model/parse":
                    name = stub.intent(body.get("text"))
                    self._answer(500 if name is None else 200, json.dumps({"intent": {"name": name}}).encode())
                    return
                with stub._lock:
                    stub.turns.append((body.get("sender"), body.get("message")))
                if stub.delay:
                    time.sleep(stub.delay)
                self._answer(stub.status, json.dumps(stub.reply(body.get("sender"), body.get("message"))).encode())

            def _answer(self, status: int, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
