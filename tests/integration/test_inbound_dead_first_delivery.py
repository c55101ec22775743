"""A web node killed (kill -9) in the middle of a message's first delivery: the claim stays "running".

Killed before storing the message, nobody holds it: WeChat's retry, reaching another node, must store and answer it,
once (found by the cluster harness, tests/cluster/: a WeChat message lost when web1 was killed under traffic).
Killed after storing it, while waiting for the bot (issue #20): the claim names the dead process, so a retry takes the
turn over once that process's liveness key is gone, and only one retry can; a claim whose process lives is never
taken over. No retry comes for an SMS, nor for a WeChat delivery that answered "success" past its budget: a worker
takes those turns over (conversations.take_over_orphaned_turns); the late-answer sweep apologises and hands a message
to staff only when nobody answered it within LATE_ANSWER_GRACE."""
from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Message, OutboundMessage, Ticket
from app.models.base import utcnow
from app.services import conversations
from app.services.conversations.dedup import DEDUP_TTL
from app.services.conversations.liveness import LIVENESS_TTL, alive_key
from tests.conftest import TEST_SETTINGS, server_env
from tests.helpers.wechat import plain_query, text_xml
from tests.reliability.support import signed_wechat_query, wait_until
from tests.servers import healthy, start_gunicorn

OPENID = "oKilledFirstDelivery01"


def texts(direction: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.direction == direction).order_by(Message.id)))


def claim_as_a_dead_node(app, msg_id: int) -> None:
    with app.app_context():
        get_redis().set(f"linli:inbound:wechat:{msg_id}", "running", ex=600)


def test_a_retry_answers_a_message_whose_first_delivery_died_before_storing_it(app, web, rasa, street):
    claim_as_a_dead_node(app, 93001)
    answer = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "我要挂号", 93001), content_type="text/xml")
    assert "收到：我要挂号" in answer.get_data(as_text=True)
    assert texts("in") == ["我要挂号"] and texts("out") == ["收到：我要挂号"]
    assert len(rasa.turns) == 1


def test_concurrent_retries_after_a_dead_first_delivery_make_one_turn(app, web, rasa, street):
    claim_as_a_dead_node(app, 93002)
    query = plain_query()

    def post(_):
        return app.test_client().post("/wechat?" + query, data=text_xml(OPENID, "低保", 93002),
                                      content_type="text/xml").get_data(as_text=True)

    with ThreadPoolExecutor(5) as pool:
        bodies = list(pool.map(post, range(5)))
    assert len(rasa.turns) == 1
    assert texts("in") == ["低保"] and texts("out") == ["收到：低保"]
    assert all("收到：低保" in body or body == "success" for body in bodies)


def test_a_retry_while_the_first_delivery_is_alive_and_stored_still_makes_no_second_turn(app, web, rasa, street):
    first = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "居住证", 93003), content_type="text/xml")
    assert "收到：居住证" in first.get_data(as_text=True)
    claim_as_a_dead_node(app, 93003)  # as if the first still ran: its row is there, so the retry stores nothing
    retry = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "居住证", 93003), content_type="text/xml")
    assert retry.get_data(as_text=True) == "success"
    assert texts("in") == ["居住证"] and len(rasa.turns) == 1


# --- killed after storing the message (issue #20) --------------------------------------------------------------

TWILIO_TOKEN = "dead-first-delivery-twilio-token"
PHONE = "+8613900002020"


def guard_of(channel: str, external_id) -> str:
    return (get_redis().get(f"linli:inbound:{channel}:{external_id}") or b"").decode()


def looks_old(channel: str, external_id) -> None:
    """Age a claim past LIVENESS_TTL (its age is read from its TTL), as if its delivery had run that long."""
    get_redis().expire(f"linli:inbound:{channel}:{external_id}", DEDUP_TTL - LIVENESS_TTL - 1)


def serve_and_kill_mid_turn(app, rasa, post, *, wechat_budget: str = "20", waiting=None) -> None:
    """Serve the app under gunicorn (sync workers), `post` a first delivery to it, and kill the process group with
    SIGKILL while the delivery waits for the bot with its message stored (or once `waiting()` says so)."""
    rasa.delay = 30.0  # an answer that would come long after the kill
    # Budgets far above the time to the kill: the first delivery is still waiting for the bot within them (unless
    # the test wants a WeChat delivery past its budget).
    env = server_env(app, RASA_URL=rasa.url, WECHAT_REPLY_BUDGET=wechat_budget, SMS_BOT_WAIT="20", BOT_TIMEOUT="30",
                     TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    proc, port = start_gunicorn("production", env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base + "/healthz"), timeout=30, what="gunicorn serving the app")
        first = threading.Thread(target=post, args=(base,), daemon=True)
        first.start()
        wait_until(waiting or (lambda: rasa.turns and texts("in")), what="the message stored and the bot asked")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def post_quietly(request: Request) -> None:
    try:
        urlopen(request, timeout=60).read()
    except OSError:
        pass  # the connection dies with the process


def test_a_message_whose_node_died_waiting_for_the_bot_is_answered_once_by_one_of_two_retries(
        app, web, rasa, street):
    def first_delivery(base):
        post_quietly(Request(base + "/wechat?" + signed_wechat_query(), data=text_xml(OPENID, "我要挂号", 93101).encode(),
                             headers={"Content-Type": "text/xml"}))

    serve_and_kill_mid_turn(app, rasa, first_delivery)
    claim = guard_of("wechat", 93101)
    assert claim.startswith("running:") and texts("out") == []
    dead = claim[len("running:"):]
    # The dead process's key lapses within LIVENESS_TTL of its last refresh; until then it counts as alive.
    wait_until(lambda: not get_redis().exists(alive_key(dead)), timeout=3 * LIVENESS_TTL, what="the liveness lapsed")

    rasa.delay = 0.0
    query = plain_query()

    def retry(_):
        return app.test_client().post("/wechat?" + query, data=text_xml(OPENID, "我要挂号", 93101).encode(),
                                      content_type="text/xml").get_data(as_text=True)

    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(retry, range(2)))
    assert len(rasa.turns) == 2  # the dead delivery's question, and the one retry that took the turn over
    assert texts("in") == ["我要挂号"] and texts("out") == ["收到：我要挂号"]
    assert all("收到：我要挂号" in body or body == "success" for body in bodies), bodies
    assert guard_of("wechat", 93101) == "passive:收到：我要挂号"
    # Answered in the HTTP response: no row for the sweeper to find, no apology an hour later.
    assert conversations.hand_over_lost_late_answers(now=utcnow() + timedelta(hours=1)) == 0
    assert not db.session.scalars(select(OutboundMessage)).all() and not db.session.scalars(select(Ticket)).all()


def test_only_one_of_two_retries_takes_over_the_turn_of_a_dead_process(app, web, rasa, street):
    with app.app_context():
        get_redis().set("linli:inbound:wechat:93102", "running:host-gone:4242:dead", ex=DEDUP_TTL)
        looks_old("wechat", 93102)
    rasa.delay = 0.3  # both retries meet while the winner waits for the bot
    query = plain_query()

    def retry(_):
        return app.test_client().post("/wechat?" + query, data=text_xml(OPENID, "低保", 93102),
                                      content_type="text/xml").get_data(as_text=True)

    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(retry, range(2)))
    assert len(rasa.turns) == 1
    assert texts("in") == ["低保"] and texts("out") == ["收到：低保"]
    assert all("收到：低保" in body for body in bodies), bodies  # the loser answers with the winner's reply


def _retry_leaves_one_late_answer(web, slow_bot, text: str, msg_id: int) -> None:
    """WeChat's retry of `msg_id` answers "success"; the first delivery's late answer is the only reply, and the bot
    was asked once."""
    retry = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, text, msg_id), content_type="text/xml")
    assert retry.get_data(as_text=True) == "success"
    wait_until(lambda: db.session.scalars(select(OutboundMessage.body)).all(), what="the late answer queued")
    db.session.expire_all()
    assert db.session.scalars(select(OutboundMessage.body)).all() == ["请选择科室"]
    assert len(slow_bot.turns) == 1 and texts("in") == [text]


def test_a_live_process_is_not_taken_over_however_old_its_claim(app, web, slow_bot, street):
    # The first delivery misses its budget and waits for the bot's late answer in this process, which is alive.
    first = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "居住证", 93103), content_type="text/xml")
    assert first.get_data(as_text=True) == "success"
    with app.app_context():
        claim = guard_of("wechat", 93103)
        assert claim.startswith("running:")
        # This process's heartbeat (this test began with Redis flushed) has refreshed its key since.
        wait_until(lambda: get_redis().exists(alive_key(claim[len("running:"):])), what="this process's key")
        looks_old("wechat", 93103)
    _retry_leaves_one_late_answer(web, slow_bot, "居住证", 93103)


def test_a_retry_after_redis_restarted_empty_leaves_the_late_answer_to_the_live_first_delivery(
        app, web, slow_bot, street):
    """Found by the cluster harness: the retry found no claim (Redis restarted empty), claimed, found the row and wrote
    that the turn was over; the first delivery, still waiting for the bot, took that for a take-over and dropped its
    answer, and the resident heard only the apology 10 minutes later."""
    first = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "老年卡", 93108), content_type="text/xml")
    assert first.get_data(as_text=True) == "success"  # past the budget: the answer comes by the outbox
    with app.app_context():
        get_redis().delete("linli:inbound:wechat:93108")  # Redis restarted empty
    _retry_leaves_one_late_answer(web, slow_bot, "老年卡", 93108)


def test_a_retry_after_the_dead_process_queued_its_answer_asks_the_bot_nothing(app, web, rasa, street):
    # The first delivery queued its reply in the outbox, then died before its claim said so.
    web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "社保", 93104), content_type="text/xml")
    with app.app_context():
        message_id = db.session.scalar(select(Message.id).where(Message.external_id == "93104"))
        conversation_id = db.session.scalar(select(Message.conversation_id).where(Message.id == message_id))
        db.session.add(OutboundMessage(conversation_id=conversation_id, channel="wechat", to_address=OPENID,
                                       body="收到：社保", dedup_key=f"turn:{message_id}:0"))
        db.session.commit()
        get_redis().set("linli:inbound:wechat:93104", "running:host-gone:4243:dead", ex=DEDUP_TTL)
        looks_old("wechat", 93104)
    retry = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "社保", 93104), content_type="text/xml")
    assert retry.get_data(as_text=True) == "success"
    assert len(rasa.turns) == 1 and guard_of("wechat", 93104) == "outbox"


def kill_mid_sms(app, rasa, sid: str) -> Message:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC1", "From": PHONE,
              "To": "+15005550006", "Body": "我要挂号", "NumSegments": "1"}

    def first_delivery(base):
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(TEST_SETTINGS["PUBLIC_BASE_URL"] + "/sms", params)
        post_quietly(Request(base + "/sms", data=urlencode(params).encode(), headers={
            "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}))

    serve_and_kill_mid_turn(app, rasa, first_delivery)
    db.session.expire_all()
    message = db.session.scalar(select(Message).where(Message.external_id == sid))
    assert message.late_answer_due_at is not None  # marked by the INSERT that stored it
    return message


def dead_claim_lapsed(channel: str, external_id: str) -> None:
    claim = guard_of(channel, external_id)
    assert claim.startswith("running:")
    dead = claim[len("running:"):]
    wait_until(lambda: not get_redis().exists(alive_key(dead)), timeout=3 * LIVENESS_TTL, what="the liveness lapsed")


def test_an_sms_whose_node_died_waiting_for_the_bot_is_answered_once_by_a_worker(app, web, rasa, street):
    """No retry comes for an SMS: once the dead process's liveness lapses, the sweep takes its turn over."""
    message = kill_mid_sms(app, rasa, "SM93105")
    rasa.delay = 0.0
    assert conversations.take_over_orphaned_turns() == 0  # the process's key has not lapsed yet: it may be alive
    dead_claim_lapsed("sms", "SM93105")
    later = utcnow() + timedelta(seconds=2 * LIVENESS_TTL)
    assert conversations.take_over_orphaned_turns(now=later) == 1
    assert conversations.take_over_orphaned_turns(now=later) == 0
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert [(r.channel, r.to_address, r.body, r.dedup_key) for r in rows] == [
        ("sms", PHONE, "收到：我要挂号", f"turn:{message.id}:0")]
    assert len(rasa.turns) == 2  # the dead process's question, and the worker's
    # Answered: the late-answer sweep finds nothing to apologise for.
    assert conversations.hand_over_lost_late_answers(now=utcnow() + conversations.LATE_ANSWER_GRACE * 2) == 0
    assert db.session.scalar(select(Ticket.id)) is None


def test_a_wechat_turn_whose_node_died_after_answering_success_is_answered_by_a_worker(app, web, rasa, street):
    """Past its budget the delivery answered "success" and waited for the bot: WeChat retries nothing then."""
    def first_delivery(base):
        post_quietly(Request(base + "/wechat?" + signed_wechat_query(), data=text_xml(OPENID, "老年卡", 93106).encode(),
                             headers={"Content-Type": "text/xml"}))

    def marked_late():  # "success" answered after the budget; the process goes on waiting for the bot
        db.session.expire_all()
        return db.session.scalar(select(Message.late_answer_due_at).where(Message.external_id == "93106"))

    serve_and_kill_mid_turn(app, rasa, first_delivery, wechat_budget="0.5", waiting=marked_late)
    rasa.delay = 0.0
    dead_claim_lapsed("wechat", "93106")
    assert conversations.take_over_orphaned_turns(now=utcnow() + timedelta(seconds=2 * LIVENESS_TTL)) == 1
    assert db.session.scalars(select(OutboundMessage.body)).all() == ["收到：老年卡"]
    assert len(rasa.turns) == 2


def test_an_sms_nobody_answered_within_the_grace_is_handed_to_staff_once(app, web, rasa, street):
    """No worker took it over in time (the ticker or the bot down as well): the late-answer sweep apologises and
    opens a ticket."""
    message = kill_mid_sms(app, rasa, "SM93107")
    assert conversations.hand_over_lost_late_answers() == 0  # not overdue yet

    later = utcnow() + conversations.LATE_ANSWER_GRACE + timedelta(seconds=1)
    assert conversations.take_over_orphaned_turns(now=later) == 0  # overdue: the late-answer sweep's
    assert conversations.hand_over_lost_late_answers(now=later) == 1
    assert conversations.hand_over_lost_late_answers(now=later) == 0
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert [(r.channel, r.to_address, r.body, r.dedup_key) for r in rows] == [
        ("sms", PHONE, conversations.APOLOGY, f"turn:{message.id}:0")]
    assert db.session.scalar(select(Ticket.conversation_id)) == message.conversation_id
    assert len(rasa.turns) == 1


def test_answered_sms_lose_their_mark_so_the_sweeper_apologises_for_none(app, web, rasa, street, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    rasa.reply = lambda sender, text: [] if text == "好的" else [{"text": f"收到：{text}"}]

    def sms(sid: str, body: str) -> None:
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC1", "From": PHONE, "To": "+15005550006",
                  "Body": body, "NumSegments": "1"}
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(TEST_SETTINGS["PUBLIC_BASE_URL"] + "/sms", params)
        assert web.post("/sms", data=params, headers={"X-Twilio-Signature": signature}).status_code == 200

    sms("SM93106", "你好")  # answered through the outbox
    sms("SM93107", "好的")  # nothing from the bot: its own turn failed (Rasa's REST channel then answers [])
    db.session.expire_all()
    assert db.session.scalars(select(Message.late_answer_due_at).where(Message.direction == "in")).all() == [None] * 2
    assert conversations.hand_over_lost_late_answers(now=utcnow() + timedelta(hours=1)) == 0
    assert db.session.scalars(select(OutboundMessage.body)).all() == ["收到：你好", conversations.APOLOGY]
    assert len(db.session.scalars(select(Ticket)).all()) == 1  # a person answers it, once
