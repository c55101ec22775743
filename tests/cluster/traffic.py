"""Traffic through the cluster's balancer as the vendors send it, and the tally of what came out at the stubs.

WeChat sends a message again, same MsgId, when it has no answer within 5 s; Twilio's fallback URL sends an SMS
again with the same MessageSid; a help button presses again with the same press id; a booking client sends again
after an error. So every request here is retried until it gets an HTTP answer under 500, at most TRIES times.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tests.cluster.cluster import SERVICE_TOKEN, WECHAT_TOKEN, Cluster, database_url
from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

TRIES = 6
WECHAT_TIMEOUT = 5.0
KEFU = "/cgi-bin/message/custom/send"
TWILIO = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}"
PHONE_PREFIXES = {"traffic": (135, 137), "capacity": (136, 138), "restart": (133, 134)}  # elders' two contacts
TEXTS = ["你好", "我要挂号", "社保卡怎么补办", "谢谢", "怎么办理居住证"]


@dataclass
class Ledger:
    """What the driver sent and what it was answered over HTTP."""

    wechat: dict[str, list[str]] = field(default_factory=dict)  # openid -> passive replies received (not "success")
    sms: list[str] = field(default_factory=list)  # phones
    alerts: dict[str, int] = field(default_factory=dict)  # first contact's phone -> alert id
    bookings: dict[int, int] = field(default_factory=dict)  # patient id -> final HTTP status
    unanswered: list[str] = field(default_factory=list)  # requests that never got an HTTP answer under 500
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Driver:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.base = cluster.base_url
        self.ledger = Ledger()
        self.http = requests.Session()
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64))

    def _send(self, what: str, call) -> requests.Response | None:
        for attempt in range(TRIES):
            try:
                answer = call()
                if answer.status_code < 500:
                    return answer
            except requests.RequestException:
                pass
            with self.ledger.lock:
                self.ledger.retries += 1
            time.sleep(min(1.0 * (attempt + 1), 3.0))
        with self.ledger.lock:
            self.ledger.unanswered.append(what)
        return None

    def _post_wechat(self, what: str, body: bytes) -> requests.Response | None:
        from app.channels.wechat_envelope import signature_of

        def call():
            ts, nonce = str(int(time.time())), secrets.token_hex(8)
            return self.http.post(f"{self.base}/wechat", data=body, timeout=WECHAT_TIMEOUT,
                                  params={"signature": signature_of(WECHAT_TOKEN, ts, nonce), "timestamp": ts,
                                          "nonce": nonce}, headers={"Content-Type": "text/xml"})

        return self._send(what, call)

    def wechat(self, openid: str, text: str, msg_id: int) -> None:
        body = (f"<xml><ToUserName><![CDATA[gh_linli]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()

        answer = self._post_wechat(f"wechat {openid}", body)
        if answer is not None:
            reply = passive_text(answer.text)
            with self.ledger.lock:
                self.ledger.wechat.setdefault(openid, []).extend([reply] if reply else [])

    def subscribe(self, openid: str) -> None:
        """A follow event: the app answers it with its welcome, never asking the bot."""
        body = (f"<xml><ToUserName><![CDATA[gh_linli]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[subscribe]]></Event></xml>").encode()
        self._post_wechat(f"subscribe {openid}", body)

    def sms(self, phone: str, text: str, sid: str) -> None:
        params = {"MessageSid": sid, "AccountSid": DEFAULT_ACCOUNT_SID, "From": phone, "To": "+8610000000000",
                  "Body": text}
        signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(self.base + "/sms", params)
        answer = self._send(f"sms {phone}", lambda: self.http.post(
            f"{self.base}/sms", data=params, headers={"X-Twilio-Signature": signature}, timeout=15))
        if answer is not None:
            with self.ledger.lock:
                self.ledger.sms.append(phone)

    def press(self, person: dict, press_id: str) -> None:
        from app.services.help import sign

        def call():
            ts = int(time.time())
            return self.http.post(f"{self.base}/api/devices/{person['uid']}/alerts", timeout=15,
                                  json={"press_id": press_id, "timestamp": ts},
                                  headers={"X-Linli-Signature": sign(person["secret"], person["uid"], press_id, ts)})

        answer = self._send(f"press {person['uid']}", call)
        if answer is not None and answer.status_code == 201:
            with self.ledger.lock:
                self.ledger.alerts[person["phone"]] = answer.json()["alert"]["id"]

    def book(self, resident_id: int, patient_id: int, slot_id: int) -> None:
        answer = self._send(f"book {patient_id}", lambda: self.http.post(
            f"{self.base}/api/booking/residents/{resident_id}/appointments", timeout=15,
            json={"slot_id": slot_id, "patient_id": patient_id}, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}))
        if answer is not None:
            with self.ledger.lock:
                self.ledger.bookings[patient_id] = answer.status_code


def passive_text(body: str) -> str | None:
    if not body.startswith("<"):
        return None
    from app.channels.wechat_envelope import parse_xml

    return parse_xml(body).get("Content")


# --- data the traffic needs, written straight into the database ------------------------------------------------

def seed(*, elders: int, patients: int, capacity: int, tag: str = "traffic") -> dict:
    """Elders with a help button and a two-contact chain; one slot of `capacity` seats and `patients` who want it."""
    import os

    from app import create_app
    from app.core.extensions import db
    from app.models import HelpContact
    from app.services import help as help_service
    from tests.factories import DepartmentFactory, DoctorFactory, PatientFactory, ResidentFactory, SlotFactory

    os.environ.setdefault("SECRET_KEY", "cluster-secret-key-of-32-characters-at-least")
    app = create_app({"ENV": "test", "DATABASE_URL": database_url("127.0.0.1"), "REDIS_URL": "redis://127.0.0.1:9/0",
                      "SECRET_KEY": "cluster-secret-key-of-32-characters-at-least"})
    people, bookers = [], []
    with app.app_context():
        for i in range(elders):
            elder = ResidentFactory(is_elderly=True, name=f"老人{i}", address=f"幸福路{i}号")
            db.session.flush()
            first, second = PHONE_PREFIXES[tag]
            phone = f"+86{first}{i:08d}"
            db.session.add_all([
                HelpContact(resident_id=elder.id, position=1, name=f"家属{i}", phone=phone, relation="family",
                            channels="voice,sms"),
                HelpContact(resident_id=elder.id, position=2, name="值班室", phone=f"+86{second}{i:08d}",
                            relation="staff", channels="voice")])
            db.session.commit()
            device, secret = help_service.register_device(device_uid=f"CLUSTER-{tag}-{i:04d}", resident_id=elder.id)
            people.append({"uid": device.device_uid, "secret": secret, "phone": phone})
        day = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=2)
        doctor = DoctorFactory(department=DepartmentFactory())
        slot = SlotFactory(doctor=doctor, department=doctor.department, day=day, capacity=capacity)
        for _ in range(patients):
            patient = PatientFactory()
            db.session.flush()
            bookers.append((patient.resident_id, patient.id))
        db.session.commit()
        slot_id = slot.id
    return {"app": app, "people": people, "bookers": bookers, "slot_id": slot_id}


@dataclass
class Figures:
    wechat_sent: int
    wechat_answered: int
    wechat_duplicated: int
    sms_sent: int
    sms_answered: int
    sms_duplicated: int
    alerts_raised: int
    alerts_first_call: int
    alerts_first_call_twice: int
    bookings_tried: int
    bookings_made: int
    bookings_refused: int
    bookings_double: int
    slot_overbooked: int
    unanswered_requests: int
    retries: int
    missing: list[str] = field(default_factory=list)  # who got no answer, with their outbox rows' state

    @property
    def lost(self) -> int:
        return ((self.wechat_sent - self.wechat_answered) + (self.sms_sent - self.sms_answered)
                + (self.alerts_raised - self.alerts_first_call) + self.unanswered_requests
                + (self.bookings_tried - self.bookings_made - self.bookings_refused))

    @property
    def duplicated(self) -> int:
        return (self.wechat_duplicated + self.sms_duplicated + self.alerts_first_call_twice + self.bookings_double
                + self.slot_overbooked)

    def lines(self) -> list[str]:
        return [f"WeChat messages: {self.wechat_sent} sent, {self.wechat_answered} answered, "
                f"{self.wechat_duplicated} answered twice",
                f"SMS messages:    {self.sms_sent} sent, {self.sms_answered} answered, {self.sms_duplicated} answered twice",
                f"help alerts:     {self.alerts_raised} raised, {self.alerts_first_call} reached their first call, "
                f"{self.alerts_first_call_twice} called twice for one step",
                f"bookings:        {self.bookings_tried} tried, {self.bookings_made} made, {self.bookings_refused} refused, "
                f"{self.bookings_double} made twice, slot over capacity by {self.slot_overbooked}",
                f"requests never answered under 500 after {TRIES} tries: {self.unanswered_requests} "
                f"(retries sent: {self.retries})",
                f"LOST: {self.lost}   DUPLICATED: {self.duplicated}"] + [f"  missing: {m}" for m in self.missing]


def answers_per_message(inbound: dict[str, str], *, passive: dict[str, int], pushed: dict[str, list[str]],
                        parts: dict[str, int]) -> dict[str, int]:
    """How many times each inbound message was answered, whatever the words: {external id: answers}.

    inbound: address (openid, phone) -> the external id (MsgId, MessageSid) of the one message the traffic sent from
    it. Each resident of the traffic sends one message, retried under the same id, so every reply to an address
    answers that message.
    passive: address -> replies in the webhook's HTTP answer (WeChat's passive reply); each is a whole answer.
    pushed: address -> the texts sent to it through the vendor's API (客服 message, SMS), as the stubs recorded them.
    parts: external id -> the outbox rows the message's turn queued (dedup key `turn:<message id>:<n>`, one per bot
    message or SMS segment): one answer pushed is that many sends. Sends beyond them are another answer, and so is
    the same text sent twice.
    """
    counts = {}
    for address, external_id in inbound.items():
        texts = pushed.get(address, [])
        per_answer = max(1, parts.get(external_id, 0))
        answers_pushed = -(-len(texts) // per_answer)  # ceiling: a second answer counts even with other words
        if texts and max(Counter(texts).values()) > 1:
            answers_pushed = max(answers_pushed, 2)
        counts[external_id] = passive.get(address, 0) + answers_pushed
    return counts


def turn_parts(inbound: dict[str, str]) -> dict[str, int]:
    """external id -> the outbox rows its turn queued (replies.dedup_key: `turn:<message id>:<n>`)."""
    from app.core.extensions import db
    from app.models import Message, OutboundMessage

    ids = dict(db.session.execute(select(Message.id, Message.external_id).where(
        Message.direction == "in", Message.external_id.in_(list(inbound.values())))).all())
    parts = Counter()
    for key in db.session.scalars(select(OutboundMessage.dedup_key).where(
            OutboundMessage.to_address.in_(list(inbound)), OutboundMessage.dedup_key.like("turn:%"))):
        message_id = int(key.split(":")[1])
        if message_id in ids:
            parts[ids[message_id]] += 1
    return dict(parts)


def tally(cluster: Cluster, driver: Driver, data: dict, *, expected: dict) -> Figures:
    """What reached the residents, contacts and the booking ledger, counted at the stubs and in the database."""
    from app.core.extensions import db
    from app.models import Appointment, EscalationStep, HelpContact, OutboundMessage, Slot

    ledger = driver.ledger
    pushed: dict[str, list[str]] = {}
    for call in cluster.wechat.calls_to(KEFU):
        if call["status"] == 200 and (call["response"] or {}).get("errcode", 0) == 0:
            body = call["json"] or {}
            pushed.setdefault(body.get("touser"), []).append((body.get("text") or {}).get("content"))
    passive = {openid: len(ledger.wechat.get(openid, [])) for openid in expected["wechat"]}

    calls = Counter()
    for call in cluster.twilio.calls_to(TWILIO):
        if call["status"] not in (200, 201):
            continue
        if call["path"].endswith("/Messages.json"):
            pushed.setdefault(call["form"].get("To"), []).append(call["form"].get("Body"))
        elif call["path"].endswith("/Calls.json"):
            calls[call["form"].get("To")] += 1

    wechat_ids = {openid: expected["ids"][openid] for openid in expected["wechat"]}
    sms_ids = {phone: expected["ids"][phone] for phone in expected["sms"]}
    with data["app"].app_context():
        parts = turn_parts({**wechat_ids, **sms_ids})
        db.session.remove()
    wechat = answers_per_message(wechat_ids, passive=passive, pushed=pushed, parts=parts)
    sms = answers_per_message(sms_ids, passive={}, pushed=pushed, parts=parts)
    wechat_answered, wechat_twice = sum(n >= 1 for n in wechat.values()), sum(n > 1 for n in wechat.values())
    sms_answered, sms_twice = sum(n >= 1 for n in sms.values()), sum(n > 1 for n in sms.values())

    first_phones = [p["phone"] for p in expected["people"]]
    with data["app"].app_context():
        active = Counter(db.session.scalars(select(Appointment.patient_id).where(
            Appointment.slot_id == data["slot_id"], Appointment.status != "cancelled")))
        # A contact called again in a later round of the chain is not a duplicate: each (round, step) is one attempt.
        attempts = Counter(db.session.scalars(
            select(HelpContact.phone).join(EscalationStep, EscalationStep.contact_id == HelpContact.id)
            .where(HelpContact.phone.in_(first_phones), EscalationStep.channel == "voice")))
        slot = db.session.get(Slot, data["slot_id"])
        over = max(0, slot.booked_count - slot.capacity) + abs(slot.booked_count - sum(active.values()))
        silent = [a for a, i in {**wechat_ids, **sms_ids}.items() if not {**wechat, **sms}[i]]
        missing = []
        for address in silent:
            rows = db.session.scalars(select(OutboundMessage).where(OutboundMessage.to_address == address))
            missing.append(f"{address}: outbox {[(row.status, row.attempts, row.last_error) for row in rows]}")
        db.session.remove()
    tried = [pid for _, pid in expected["bookers"]]
    made = sum(1 for pid in tried if active[pid] >= 1)
    refused = sum(1 for pid in tried if active[pid] == 0 and ledger.bookings.get(pid) == 409)
    return Figures(
        wechat_sent=len(expected["wechat"]), wechat_answered=wechat_answered, wechat_duplicated=wechat_twice,
        sms_sent=len(expected["sms"]), sms_answered=sms_answered, sms_duplicated=sms_twice,
        alerts_raised=len(first_phones), alerts_first_call=sum(1 for p in first_phones if calls[p] >= 1),
        alerts_first_call_twice=sum(1 for p in first_phones if calls[p] > max(1, attempts[p])),
        bookings_tried=len(tried), bookings_made=made, bookings_refused=refused,
        bookings_double=sum(1 for n in active.values() if n > 1), slot_overbooked=over,
        unanswered_requests=len(ledger.unanswered), retries=ledger.retries, missing=missing + ledger.unanswered)


def rasa_rate(url: str, *, turns: int, concurrency: int, tag: str) -> float:
    """Bot turns per second straight at a Rasa REST channel (`url`), each turn a new sender."""
    from concurrent.futures import ThreadPoolExecutor

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))

    def turn(n: int) -> None:
        session.post(f"{url}/webhooks/rest/webhook", json={"sender": f"{tag}-{n}", "message": TEXTS[n % len(TEXTS)]},
                     timeout=60).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(turn, range(turns)))
    return turns / (time.perf_counter() - started)

