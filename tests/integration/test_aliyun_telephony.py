"""Help calls and SMS through Alibaba Cloud: the real SDKs against the Aliyun stub, and its receipt push.

Aliyun signs no push: the app's guard is the token in the push URL, the signed OutId of each call and a replay
memory (docs/help.md, "Aliyun's receipts"). Each test here goes through the real HTTP server of the app.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.core.worker import build_worker
from app.models import EscalationStep, HelpAlert, Message, OutboundMessage
from integrations.rasa import RasaRestClient
from integrations.telephony import choose_provider, parse_prefixes
from tests.conftest import make_test_app
from tests.factories import ConversationFactory
from tests.helpers.help import make_chain, make_device
from tests.helpers.help_calls import aliyun_push_urls, aliyun_settings, drain, press
from tests.helpers.wechat import RasaStub
from tests.stubs.aliyun_stub import BUSY, LISTENED, NOT_ANSWERED, AliyunStub, aliyun_time
from tests.stubs.server import ServerThread


def _start(help_app, base, n=3, channels="voice"):
    with help_app.app_context():
        elder, contacts = make_chain(n=n, channels=channels)
        ConversationFactory(resident=elder, channel="wechat")
        db.session.commit()
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
        ids = [c.id for c in contacts]
    alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
    drain(help_app)
    return alert_id, phones, ids


def _alert(help_app, alert_id) -> HelpAlert:
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        db.session.expunge(alert)
        return alert


def test_a_help_call_is_an_ivr_call_signed_by_the_sdk_with_a_signed_reference(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    assert call["action"] == "IvrCall" and "+86" + call["to"] == phones[0]
    assert call["keys"] == ["1", "2"] and call["params"]["StartCode"] == "TTS_300000001"
    assert call["out_id"].split(".")[0].isdigit() and len(call["out_id"].split(".")[1]) == 16
    with help_app.app_context():
        attempt = db.session.scalar(select(EscalationStep).where(EscalationStep.alert_id == alert_id))
        assert (attempt.provider, attempt.external_sid, attempt.status) == ("aliyun", call["call_id"], "placed")


def test_a_request_with_a_wrong_key_secret_is_refused_by_the_stub_and_the_chain_moves_on(help_db, app, aliyun_stub):
    help_app = make_test_app(**{**aliyun_settings(aliyun_stub), "ALIYUN_ACCESS_KEY_SECRET": "not-the-secret"})
    server = ServerThread(help_app).start()
    help_app.config["PUBLIC_BASE_URL"] = server.base_url
    try:
        with help_app.app_context():
            elder, _ = make_chain(n=2, channels="voice")
            uid, secret = make_device(elder.id)
        press(server.base_url, uid, secret, "p-1")
        # One step only: with every call refused the chain would go round and round (each failure moves it on).
        build_worker(help_app, ("escalation",)).work(burst=True, max_jobs=1)
    finally:
        server.stop()
    assert aliyun_stub.placed_calls() == []
    assert [r["status"] for r in aliyun_stub.calls] == [400]
    with help_app.app_context():
        [attempt] = db.session.scalars(select(EscalationStep)).all()
        assert attempt.status == "send_failed" and "SignatureDoesNotMatch" in attempt.last_error


def test_press_1_accepts_the_contact_reads_the_confirmation_and_the_resident_is_told(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, ids = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    answer = aliyun_stub.report_key(call["call_id"], "1")
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "接收成功"}
    drain(help_app)
    alert = _alert(help_app, alert_id)
    assert (alert.status, alert.accepted_contact_id, alert.accepted_via) == ("accepted", ids[0], "voice")
    [confirmation] = aliyun_stub.texts_to(phones[0])
    assert confirmation.startswith("【邻里】已确认由您前往：")
    with help_app.app_context():
        told = db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "notice")).all()
        coming = [m for m in told if "已接到您的求助" in m.body]
        assert len(coming) == 1 and coming[0].template == "help_update"


def test_a_replayed_key_report_is_already_done_and_changes_nothing(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    item = {"call_id": call["call_id"], "status_code": "300000", "dtmf": "1", "status_time": aliyun_time(),
            "out_id": call["out_id"]}
    assert aliyun_stub.push("VoiceCallReport", [item]).status_code == 200
    drain(help_app)
    replayed = aliyun_stub.push("VoiceCallReport", [{**item, "status_time": aliyun_time()}])
    # Already done: answered as taken, so that Aliyun's own retry of a push stops; nothing acts twice.
    assert replayed.status_code == 200 and replayed.json() == {"code": 0, "msg": "接收成功"}
    drain(help_app)
    assert len(aliyun_stub.texts_to(phones[0])) == 1  # one confirmation, not two
    assert _alert(help_app, alert_id).status == "accepted"


@pytest.mark.parametrize("tamper", ["no_token", "wrong_token", "forged_out_id", "other_call_id", "unknown_out_id"])
def test_forged_pushes_accept_nothing_and_a_push_without_the_token_gets_403(help_db, aliyun_served, aliyun_stub, tamper):
    help_app, base = aliyun_served
    alert_id, _, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    item = {"call_id": call["call_id"], "status_code": "300000", "dtmf": "1", "status_time": aliyun_time(),
            "out_id": call["out_id"]}
    url = aliyun_stub.report_urls["VoiceCallReport"]
    attempt_id, mac = call["out_id"].split(".")
    if tamper == "no_token":
        url = url.split("?")[0]
    elif tamper == "wrong_token":
        url = url.replace("token=", "token=x")
    elif tamper == "forged_out_id":
        item["out_id"] = f"{attempt_id}.{'0' * 16}"
    elif tamper == "other_call_id":
        item["call_id"] = "100000000000^100000000000"
    else:
        item["out_id"] = f"{int(attempt_id) + 1}.{mac}"
    answer = AliyunStub.push_to(url, [item])
    if tamper in ("no_token", "wrong_token"):  # the request itself is not authenticated
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "invalid_callback_token"
    else:  # an item naming a call we never made is skipped (logged); the batch is answered as taken
        assert answer.status_code == 200 and answer.json()["code"] == 0
    drain(help_app)
    alert = _alert(help_app, alert_id)
    assert (alert.status, alert.step) == ("escalating", 1)
    assert aliyun_stub.sent_texts() == [] and len(aliyun_stub.placed_calls()) == 1


def test_a_batch_with_a_genuine_and_a_forged_report_takes_the_genuine_one_only(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, ids = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    attempt_id, mac = call["out_id"].split(".")
    genuine = {"call_id": call["call_id"], "status_code": "300000", "dtmf": "1", "status_time": aliyun_time(),
               "out_id": call["out_id"]}
    # Another system on the same Aliyun account (or an OutId signed before SECRET_KEY was rotated), and a forgery.
    foreign = {**genuine, "call_id": "123456789012^12345678901", "out_id": "order-778812"}
    forged = {**genuine, "out_id": f"{attempt_id}.{'0' * 16}"}
    answer = aliyun_stub.push("VoiceCallReport", [foreign, genuine, forged])
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "接收成功"}  # Aliyun stops retrying
    drain(help_app)
    alert = _alert(help_app, alert_id)
    assert (alert.status, alert.accepted_contact_id) == ("accepted", ids[0])
    assert len(aliyun_stub.texts_to(phones[0])) == 1  # one confirmation
    # Aliyun's retry of the same batch (it documents duplicates): already done, nothing acts twice.
    again = aliyun_stub.push("VoiceCallReport", [foreign, {**genuine, "status_time": aliyun_time()}, forged])
    assert again.status_code == 200 and again.json()["code"] == 0
    drain(help_app)
    assert len(aliyun_stub.texts_to(phones[0])) == 1


@pytest.mark.parametrize("digits", ["2", "0", "3", "9", "*", "#"])
def test_press_2_or_any_key_but_1_never_accepts_and_the_chain_goes_on(help_db, aliyun_served, aliyun_stub, digits):
    help_app, base = aliyun_served
    alert_id, phones, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    assert aliyun_stub.report_key(call["call_id"], digits).status_code == 200
    # How the call ended, carrying the same key (Aliyun's VoiceReport has the call's dtmf too).
    assert aliyun_stub.report_end(call["call_id"], LISTENED, dtmf=digits).status_code == 200
    drain(help_app)
    alert = _alert(help_app, alert_id)
    assert (alert.status, alert.accepted_contact_id, alert.step) == ("escalating", None, 2)
    assert ["+86" + c["to"] for c in aliyun_stub.placed_calls()] == phones[:2]
    assert aliyun_stub.texts_to(phones[0]) == []  # no "已确认由您前往"
    with help_app.app_context():
        first = db.session.scalar(select(EscalationStep).where(EscalationStep.alert_id == alert_id,
                                                               EscalationStep.step == 1))
        assert first.status == ("passed" if digits == "2" else "completed")


def test_a_number_is_not_called_again_through_aliyun_within_a_minute(help_db, aliyun_served, aliyun_stub):
    """Aliyun's flow control refuses a second call to a number within a minute: a one-contact chain that ends busy
    starts its next round no sooner than 60 s after the last call to that number (Twilio's pause is 30 s)."""
    from app.models.base import utcnow
    from app.services.help import escalation

    help_app, base = aliyun_served
    alert_id, phones, _ = _start(help_app, base, n=1)
    [call] = aliyun_stub.placed_calls()
    with help_app.app_context():
        placed_at = db.session.scalar(select(EscalationStep.created_at).where(EscalationStep.alert_id == alert_id))
    assert aliyun_stub.report_end(call["call_id"], BUSY).status_code == 200
    drain(help_app)
    with help_app.app_context():
        # Twilio's round pause has passed, Aliyun's minute has not: no call, the round waits for the minute.
        assert not escalation.advance(alert_id=alert_id, round=1, step=1,
                                      now=utcnow() + escalation.ROUND_PAUSE + timedelta(seconds=1))
        escalation.sweep(now=utcnow() + escalation.ROUND_PAUSE + timedelta(seconds=1))  # the sweeper's move too
    drain(help_app)
    assert len(aliyun_stub.placed_calls()) == 1
    alert = _alert(help_app, alert_id)
    assert (alert.round, alert.step, alert.alarm) == (1, 1, True)
    assert alert.step_due_at >= placed_at + timedelta(seconds=60)
    with help_app.app_context():
        assert escalation.advance(alert_id=alert_id, round=1, step=1, now=placed_at + timedelta(seconds=61))
    drain(help_app)
    assert ["+86" + c["to"] for c in aliyun_stub.placed_calls()] == [phones[0], phones[0]]
    assert (_alert(help_app, alert_id).round, _alert(help_app, alert_id).step) == (2, 1)


def test_a_push_from_outside_the_sources_is_refused_and_a_too_old_report_skipped(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, _, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    help_app.config["ALIYUN_CALLBACK_SOURCES"] = "10.0.0.0/8, 192.168.0.0/16"
    assert aliyun_stub.report_key(call["call_id"], "1").status_code == 403
    help_app.config["ALIYUN_CALLBACK_SOURCES"] = "127.0.0.0/8"
    old = aliyun_stub.report_key(call["call_id"], "1", status_time="2020-01-01 08:00:00")
    assert old.status_code == 200 and old.json()["code"] == 0  # skipped: a retry of it would be as old
    assert _alert(help_app, alert_id).status == "escalating"


@pytest.mark.parametrize("status_code", [LISTENED, NOT_ANSWERED, BUSY])
def test_voicemail_or_no_answer_never_accepts_and_the_next_contact_is_called(help_db, aliyun_served, aliyun_stub,
                                                                            status_code):
    help_app, base = aliyun_served
    alert_id, phones, _ = _start(help_app, base)
    [call] = aliyun_stub.placed_calls()
    # LISTENED without a key is what a voicemail (or a person who pressed nothing) looks like.
    assert aliyun_stub.report_end(call["call_id"], status_code).status_code == 200
    drain(help_app)
    alert = _alert(help_app, alert_id)
    assert alert.status == "escalating" and alert.step == 2
    assert ["+86" + c["to"] for c in aliyun_stub.placed_calls()] == phones[:2]


def test_a_late_press_1_after_someone_else_won_reads_that_it_is_taken(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, ids = _start(help_app, base)
    first = aliyun_stub.placed_calls()[0]
    aliyun_stub.report_end(first["call_id"], NOT_ANSWERED)
    drain(help_app)
    second = aliyun_stub.placed_calls()[1]
    assert aliyun_stub.report_key(second["call_id"], "1").status_code == 200
    assert aliyun_stub.report_key(first["call_id"], "1").status_code == 200  # the first contact calls back late
    drain(help_app)
    assert _alert(help_app, alert_id).accepted_contact_id == ids[1]
    assert any("已由联系人2接受" in t for t in aliyun_stub.texts_to(phones[0]))


def test_sms_go_by_approved_templates_and_an_sms_reply_accepts(help_db, aliyun_served, aliyun_stub):
    help_app, base = aliyun_served
    alert_id, phones, ids = _start(help_app, base, channels="sms")
    [request_text] = aliyun_stub.texts_to(phones[0])
    assert request_text.startswith("【邻里】紧急求助：") and aliyun_stub.sent_texts()[0]["template"] == "SMS_465000001"
    assert aliyun_stub.report_sms_reply(phones[0], "1").status_code == 200
    drain(help_app)
    assert _alert(help_app, alert_id).accepted_contact_id == ids[0]
    assert aliyun_stub.texts_to(phones[0])[-1].startswith("【邻里】已确认由您前往")


def test_a_residents_own_sms_through_aliyun_is_a_conversation_turn_answered_once_by_aliyun(help_db, aliyun_served,
                                                                                           aliyun_stub):
    """Not an acceptance nor a check-in: a question, or "确认候补" to a waitlist offer texted through Aliyun. It was
    dropped; now a worker takes it through the SMS conversation like a Twilio text, once however often it is pushed."""
    help_app, _ = aliyun_served
    bot = RasaStub()
    bot.reply = lambda sender, text: [{"text": "老年卡请带身份证到社区服务中心办理"}]
    transports.use(help_app, bot=RasaRestClient(bot.url))
    phone = "+8613911112222"
    item = {"phone_number": phone.removeprefix("+86"), "content": "老年卡怎么办", "sign_name": aliyun_stub.sign_name,
            "dest_code": "", "sequence_id": 4242424242, "send_time": aliyun_time()}
    try:
        assert aliyun_stub.push("SmsUp", [item]).status_code == 200
        build_worker(help_app, ("default",)).work(burst=True)
        with help_app.app_context():  # Redis restarted empty: its memory of the push is gone, the row's is not
            for key in get_redis().scan_iter("aliyun:seen:*"):
                get_redis().delete(key)
        assert aliyun_stub.push("SmsUp", [item]).status_code == 200  # Aliyun's retry of the same push
        build_worker(help_app, ("default",)).work(burst=True)
        build_worker(help_app, ("outbound",)).work(burst=True)
    finally:
        bot.stop()
    assert [text for _, text in bot.turns] == ["老年卡怎么办"]
    assert aliyun_stub.texts_to(phone) == ["【邻里】邻里社区消息：老年卡请带身份证到社区服务中心办理"]  # the approved template
    with help_app.app_context():
        [message] = db.session.scalars(select(Message).where(Message.direction == "in")).all()
        assert (message.text, message.channel) == ("老年卡怎么办", "sms")


def test_a_residents_sms_through_aliyun_that_cannot_be_queued_is_not_acknowledged(help_db, app, aliyun_stub):
    """Redis down: nothing was kept, so the push must fail and Aliyun push it again."""
    help_app = make_test_app(**{**aliyun_settings(aliyun_stub), "REDIS_URL": "redis://127.0.0.1:1/0"})
    server = ServerThread(help_app).start()
    aliyun_stub.report_urls = aliyun_push_urls(server.base_url)
    try:
        answer = aliyun_stub.report_sms_reply("+8613911113333", "老年卡怎么办")
    finally:
        server.stop()
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "service_unavailable"


def test_the_provider_is_chosen_per_number_or_per_deployment():
    mainland = parse_prefixes("86")
    assert choose_provider("+8613700000000", mode="by_number", aliyun_prefixes=mainland) == "aliyun"
    assert choose_provider("+14155550100", mode="by_number", aliyun_prefixes=mainland) == "twilio"
    assert choose_provider("+14155550100", mode="aliyun", aliyun_prefixes=mainland) == "aliyun"
    assert choose_provider("+8613700000000", mode="twilio", aliyun_prefixes=mainland) == "twilio"


def test_by_number_sends_mainland_calls_to_aliyun_and_others_to_twilio(help_db, app, aliyun_stub, twilio_stub):
    from tests.helpers.help import add_contact
    from tests.helpers.help_calls import TwilioNetwork

    settings = {**aliyun_settings(aliyun_stub), **TwilioNetwork(twilio_stub).settings(),
                "TELEPHONY_PROVIDER": "by_number"}
    help_app = make_test_app(**settings)
    server = ServerThread(help_app).start()
    help_app.config["PUBLIC_BASE_URL"] = server.base_url
    try:
        with help_app.app_context():
            elder, _ = make_chain(n=1, channels="voice")
            add_contact(elder.id, 2, phone="+14155550100", channels="voice")
            uid, secret = make_device(elder.id)
        alert_id = press(server.base_url, uid, secret, "p-1").json()["alert"]["id"]
        drain(help_app)
        aliyun_stub.report_urls = aliyun_push_urls(server.base_url)
        aliyun_stub.report_end(aliyun_stub.placed_calls()[0]["call_id"], NOT_ANSWERED)
        drain(help_app)
    finally:
        server.stop()
    assert len(aliyun_stub.placed_calls()) == 1 and len(twilio_stub.placed_calls()) == 1
    assert twilio_stub.placed_calls()[0]["to"] == "+14155550100"
    with help_app.app_context():
        providers = db.session.scalars(select(EscalationStep.provider).where(EscalationStep.alert_id == alert_id)
                                       .order_by(EscalationStep.id)).all()
        assert providers == ["aliyun", "twilio"]



def test_the_stub_answers_single_call_by_tts_and_refuses_a_template_without_its_variables(aliyun_stub):
    from alibabacloud_dyvmsapi20170525 import models
    from alibabacloud_dyvmsapi20170525.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    client = Client(Config(access_key_id=aliyun_stub.access_key_id, access_key_secret=aliyun_stub.access_key_secret,
                           endpoint=aliyun_stub.base_url.removeprefix("http://"), protocol="http"))
    placed = client.single_call_by_tts(models.SingleCallByTtsRequest(
        called_number="13700001111", called_show_number=aliyun_stub.show_number, tts_code="TTS_300000001",
        tts_param='{"name": "王阿姨", "address": "幸福路1号"}')).body
    assert placed.code == "OK" and placed.call_id in {c["call_id"] for c in aliyun_stub.placed_calls()}
    refused = client.single_call_by_tts(models.SingleCallByTtsRequest(
        called_number="13700001111", tts_code="TTS_300000001", tts_param='{"name": "王阿姨"}')).body
    assert refused.code == "isv.TEMPLATE_MISSING_PARAMETERS" and len(aliyun_stub.placed_calls()) == 1


@pytest.mark.parametrize(("code", "retryable"), [
    ("isp.RAM_PERMISSION_DENY", False),  # the RAM user lacks dyvms:IvrCall / dysms:SendSms: no retry fixes that
    ("isv.OUT_OF_SERVICE", False), ("isv.AMOUNT_NOT_ENOUGH", False), ("isv.SMS_TEMPLATE_ILLEGAL", False),
    ("isp.SYSTEM_ERROR", True), ("isp.GATEWAY_ERROR", True), ("isv.BUSINESS_LIMIT_CONTROL", True),
])
def test_aliyun_refusals_are_retryable_only_when_a_later_try_can_succeed(aliyun_stub, code, retryable):
    from integrations.aliyun import AliyunAccount, AliyunSendError, AliyunTelephony
    from integrations.telephony import free_text
    from tests.stubs.aliyun_stub import DEFAULT_SMS_TEMPLATES, DEFAULT_VOICE_TEMPLATES

    settings = aliyun_settings(aliyun_stub)
    provider = AliyunTelephony(AliyunAccount(
        access_key_id=aliyun_stub.access_key_id, access_key_secret=aliyun_stub.access_key_secret,
        show_number=aliyun_stub.show_number, voice_templates=DEFAULT_VOICE_TEMPLATES,
        sms_sign_name=aliyun_stub.sign_name, sms_templates=DEFAULT_SMS_TEMPLATES,
        vms_endpoint=settings["ALIYUN_VMS_ENDPOINT"], sms_endpoint=settings["ALIYUN_SMS_ENDPOINT"], protocol="http"))
    aliyun_stub.fail(path="/SendSms", status=200, message=code)
    with pytest.raises(AliyunSendError) as caught:
        provider.send_text(free_text("+8613700001111", "你好"))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_the_standalone_stubs_report_base_names_the_apps_push_routes(app):
    from urllib.parse import urlsplit

    from tests.stubs.aliyun_stub import report_urls

    urls = report_urls("http://127.0.0.1:5000/aliyun/<kind>?token=T")
    assert urls == aliyun_push_urls("http://127.0.0.1:5000", "T")
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert all(urlsplit(url).path in routes for url in urls.values())
