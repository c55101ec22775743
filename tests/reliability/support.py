"""Helpers shared by the reliability tests (no tests here): seeded worlds, polling, a stoppable bot."""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from twilio.request_validator import RequestValidator

from app.core.extensions import db
from app.models import HelpContact, Message, OutboundMessage, Ticket
from app.services.booking.calendar import SHANGHAI
from tests.conftest import free_port
from tests.factories import (
    ChannelIdentityFactory,
    CommunityFactory,
    ConversationFactory,
    DoctorFactory,
    FaqArticleFactory,
    HelpDeviceFactory,
    PatientFactory,
    ResidentFactory,
    SlotFactory,
    StaffFactory,
    StreetFactory,
)

SERVICE_TOKEN = "test-bot-token"  # tests/conftest.py TEST_SETTINGS
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
PUBLIC = "http://linli.test"  # PUBLIC_BASE_URL in tests/conftest.py
TWILIO_TOKEN = "reliability-twilio-token"


class RequestScopedClient(FlaskClient):
    """A test client whose every request ends as it does in production, with its database session removed.

    Tests that hold an app context (factories need one) make Flask reuse it for each request, so without this
    one failed request would leave its session broken for the next (PendingRollbackError), which no real
    request ever sees.
    """

    def open(self, *args, **kwargs):
        try:
            return super().open(*args, **kwargs)
        finally:
            db.session.remove()


def request_scoped_client(app) -> RequestScopedClient:
    return RequestScopedClient(app, app.response_class, use_cookies=True)


def a_session_waits_on_a_lock() -> bool:
    """Whether some session of the test database is waiting on a row lock (say, another's uncommitted insert of
    the same unique key). A fresh connection per look: PostgreSQL keeps pg_stat_activity as it was at the
    start of a transaction."""
    with db.engine.connect() as probe:
        return bool(probe.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE wait_event_type = 'Lock' AND datname = current_database()")))


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02, what: str = "the condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def twilio_signature(url: str, params: dict, token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class World:
    """One street with a resident who can book, ask for help and talk to the bot; ids for fuzzers to aim at."""

    street_id: int
    resident_id: int
    sender: str
    patient_id: int
    slot_ids: list[int]
    department: str
    faq_topic: str
    device_uid: str
    device_secret: str
    staff_id: int
    extra: dict = field(default_factory=dict)


def seed_world(*, prefix: str = "w") -> World:
    """Commit a small, complete street: bookable slots, an FAQ article, a help chain with a device."""
    street = StreetFactory()
    community = CommunityFactory(street=street)
    resident = ResidentFactory(community=community)
    ChannelIdentityFactory(resident=resident, channel="wechat", external_id=f"o{prefix}Resident0001")
    conversation = ConversationFactory(resident=resident, channel="wechat", address=f"o{prefix}Resident0001")
    patient = PatientFactory(resident=resident, relation="self")
    visit_day = datetime.now(SHANGHAI).date() + timedelta(days=3)
    doctor = DoctorFactory()
    slots = [SlotFactory(doctor=doctor, department=doctor.department, day=visit_day,
                         at=datetime.strptime(f"{9 + n}:00", "%H:%M").time(), capacity=2) for n in range(3)]
    article = FaqArticleFactory()
    db.session.add(HelpContact(resident_id=resident.id, position=1, name="值班组", phone=None, channels="voice",
                               relation="staff"))
    device = HelpDeviceFactory(resident_id=resident.id, secret="fuzz-device-secret")
    staff = StaffFactory(street=street)
    db.session.commit()
    return World(street_id=street.id, resident_id=resident.id, sender=conversation.bot_sender, patient_id=patient.id,
                 slot_ids=[s.id for s in slots], department=doctor.department.name, faq_topic=article.topic,
                 device_uid=device.device_uid, device_secret="fuzz-device-secret", staff_id=staff.id)


def counts() -> dict[str, int]:
    """Row counts of what a fault must never lose or double."""
    db.session.expire_all()
    return {
        "in": db.session.scalar(select(func.count(Message.id)).where(Message.direction == "in")),
        "out": db.session.scalar(select(func.count(Message.id)).where(Message.direction == "out")),
        "outbox": db.session.scalar(select(func.count(OutboundMessage.id))),
        "tickets": db.session.scalar(select(func.count(Ticket.id))),
    }


def today() -> date:
    return datetime.now(SHANGHAI).date()


class StoppableRasa:
    """Rasa's REST channel on a fixed loopback port that can be stopped and started again (a bot restart).

    `reply(sender, text)` answers each turn; every turn it received is counted in `turns`. With `stall` (seconds),
    it sends half of each answer, then pauses that long before the rest (a bot stuck mid-write).
    """

    def __init__(self, reply=None, *, delay: float = 0.0):
        self.reply = reply or (lambda sender, text: [{"recipient_id": sender, "text": f"机器人：{text}"}])
        self.delay = delay
        self.stall = 0.0
        self.turns: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = free_port()  # kept across restarts
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "StoppableRasa":
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (Rasa's root answers when the server is up)
                self._send(200, {"version": "stub"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with bot._lock:
                    bot.turns.append((body.get("sender"), body.get("message")))
                if bot.delay:
                    time.sleep(bot.delay)
                self._send(200, bot.reply(body.get("sender"), body.get("message")))

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if bot.stall:
                    half = len(data) // 2
                    self.wfile.write(data[:half])
                    time.sleep(bot.stall)
                    data = data[half:]
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def texts(self) -> list[str]:
        with self._lock:
            return [text for _, text in self.turns]


def signed_wechat_query(token: str = "test-wechat-token") -> str:
    from app.channels.wechat_envelope import signature_of

    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    return urlencode({"signature": signature_of(token, ts, nonce), "timestamp": ts, "nonce": nonce})


def wechat_text(openid: str, content: str, msg_id: int) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_linli]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def passive_text(body: str) -> str | None:
    """The Content of a passive reply, or None for "success"."""
    if not body.startswith("<"):
        return None
    from app.channels.wechat_envelope import parse_xml

    return parse_xml(body).get("Content")
