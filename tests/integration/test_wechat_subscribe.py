"""WeChat subscribe messages (订阅通知): grants recorded from the signed webhook, then reminders, waitlist offers and
contacts' notices sent by subscribe message when granted, else 客服 inside the 48-hour window, else SMS, with the
route on the outbox row. Real wechatpy and twilio clients against the stubs on loopback."""
from __future__ import annotations

import json
import threading
from datetime import time, timedelta

import pytest
from sqlalchemy import func, select

from app.core import transports
from app.core.extensions import db
from app.models import Conversation, OutboundMessage, Resident, SlotHold, SubscribeEvent
from app.services import booking, outbox
from app.services.booking import reminders
from app.services.delivery import sending as delivery
from app.services.outbox import subscriptions
from integrations.wechat import WeChatApiError
from tests.factories import ChannelIdentityFactory, local_dt
from tests.helpers.booking import DAY, NOW, clinic, resident_with_patient
from tests.helpers.wechat import ACCOUNT, AES_KEY, APP_ID, event_xml, post_encrypted, post_plain, real_clients

BIZSEND = "/cgi-bin/message/subscribe/bizsend"
KEFU = "/cgi-bin/message/custom/send"
REMINDER_TPL = "tplReminder_8aK2pQ"
OFFER_TPL = "tplOffer_3xW9rT"
CONTACT_TPL = "tplHelpUpdate_5mN1"
TEMPLATES = {
    "booking_reminder": {"id": REMINDER_TPL, "fields": {"thing1": "patient", "time2": "time", "thing3": "place",
                                                       "character_string4": "seat"}},
    "waitlist_offer": {"id": OFFER_TPL, "fields": {"thing1": "patient", "time2": "time", "thing3": "place",
                                                   "time4": "until"}},
    "help_update": CONTACT_TPL,  # plain form: the fields are named as the template's keywords
}
EVENING = local_dt(DAY - timedelta(days=1), time(18, 0))
CONTACT_OPENID = "oContactFamily000001"
CONTACT_PHONE = "+8613900002222"


@pytest.fixture
def stubs(app, committed, wechat_stub, twilio_stub, monkeypatch):
    """Real clients aimed at the stubs; the templates configured in the app and picked on the stub's account."""
    monkeypatch.setitem(app.config, "WECHAT_SUBSCRIBE_TEMPLATES", json.dumps(TEMPLATES))
    wechat_stub.add_subscribe_template(REMINDER_TPL, "thing1", "time2", "thing3", "character_string4")
    wechat_stub.add_subscribe_template(OFFER_TPL, "thing1", "time2", "thing3", "time4")
    wechat_stub.add_subscribe_template(CONTACT_TPL, "thing1", "time2")
    with real_clients(app, wechat_stub, twilio_stub) as clients:
        yield clients


# --- helpers -----------------------------------------------------------------------------------------------------

def popup_xml(openid: str, choices: dict[str, str], *, create_time: int,
              event: str = "subscribe_msg_popup_event", container: str = "SubscribeMsgPopupEvent") -> str:
    entries = "".join(
        f"<List><TemplateId><![CDATA[{tpl}]]></TemplateId><SubscribeStatusString><![CDATA[{status}]]>"
        f"</SubscribeStatusString><PopupScene>2</PopupScene></List>" for tpl, status in choices.items())
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><{container}>{entries}</{container}></xml>")


_clock = iter(range(1_700_000_000, 1_800_000_000))


def accept(web, wechat_stub, openid: str, template_id: str) -> None:
    """The resident accepts the template in WeChat's popup: WeChat allows one message and tells our webhook."""
    wechat_stub.grant_subscribe(openid, template_id)
    response = post_plain(web, popup_xml(openid, {template_id: "accept"}, create_time=next(_clock)))
    assert response.status_code == 200 and response.get_data(as_text=True) == "success"


def grants(openid: str, template_id: str) -> int:
    db.session.expire_all()
    return subscriptions.grants_left(openid=openid, template_id=template_id)


def row(outbound_id: int) -> OutboundMessage:
    db.session.expire_all()
    return db.session.get(OutboundMessage, outbound_id)


def events() -> int:
    return db.session.scalar(select(func.count()).select_from(SubscribeEvent))


def subscribe_sends(stub) -> list[dict]:
    return stub.subscribe_messages()


def kefu_texts(stub) -> list[str]:
    return [c["json"]["text"]["content"] for c in stub.calls_to(KEFU) if c["response"]["errcode"] == 0]


def booked_with_conversation():
    slot, = clinic()
    resident, patient = resident_with_patient(conversation=True)
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    openid = db.session.scalar(select(Conversation.address).where(Conversation.resident_id == resident.id))
    return appointment, openid


def send_reminder(appointment, kind: str) -> int:
    message = reminders.send_reminder(appointment_id=appointment.id, kind=kind,
                                      now=EVENING if kind == "evening" else EVENING + timedelta(hours=13))
    assert message is not None
    return message.id


# --- grants from the webhook -----------------------------------------------------------------------------------

def test_an_accepted_popup_through_the_signed_webhook_allows_one_message_and_a_retry_counts_once(stubs, web):
    xml = popup_xml("oGrant01", {REMINDER_TPL: "accept", OFFER_TPL: "reject"}, create_time=1_690_000_001)

    assert post_plain(web, xml).status_code == 200
    assert post_plain(web, xml).status_code == 200  # WeChat's retry of the same event (new nonce, same body)

    assert grants("oGrant01", REMINDER_TPL) == 1
    assert grants("oGrant01", OFFER_TPL) == 0
    assert events() == 1
    # A second acceptance later allows a second message.
    post_plain(web, popup_xml("oGrant01", {REMINDER_TPL: "accept"}, create_time=1_690_000_050))
    assert grants("oGrant01", REMINDER_TPL) == 2


def test_rejecting_in_the_popup_or_later_in_the_settings_ends_the_grant(stubs, web):
    post_plain(web, popup_xml("oGrant02", {REMINDER_TPL: "accept", OFFER_TPL: "accept"}, create_time=1_690_000_100))
    post_plain(web, popup_xml("oGrant02", {REMINDER_TPL: "reject"}, create_time=1_690_000_101))
    assert grants("oGrant02", REMINDER_TPL) == 0
    change = popup_xml("oGrant02", {OFFER_TPL: "reject"}, create_time=1_690_000_102,
                       event="subscribe_msg_change_event", container="SubscribeMsgChangeEvent")
    assert post_plain(web, change).status_code == 200
    assert grants("oGrant02", OFFER_TPL) == 0


def test_a_sent_event_reporting_a_refused_send_ends_the_grant(stubs, web):
    post_plain(web, popup_xml("oGrant03", {REMINDER_TPL: "accept"}, create_time=1_690_000_200))
    sent = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[oGrant03]]></FromUserName>"
            f"<CreateTime>1690000201</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent><List>"
            f"<TemplateId><![CDATA[{REMINDER_TPL}]]></TemplateId><MsgID>1700827132819554304</MsgID>"
            f"<ErrorCode>43101</ErrorCode><ErrorStatus><![CDATA[failed:user refuse to accept the msg]]></ErrorStatus>"
            f"</List></SubscribeMsgSentEvent></xml>")
    assert post_plain(web, sent).status_code == 200
    assert grants("oGrant03", REMINDER_TPL) == 0


def test_an_encrypted_popup_event_in_safe_mode_is_recorded(app, stubs, web, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)
    response = post_encrypted(web, popup_xml("oGrant04", {REMINDER_TPL: "accept"}, create_time=1_690_000_300))
    assert response.status_code == 200
    assert grants("oGrant04", REMINDER_TPL) == 1


@pytest.mark.parametrize("query", [
    {"signature": "0" * 40, "timestamp": "{now}", "nonce": "abc"},  # forged signature
    {},  # unsigned
])
def test_a_forged_or_unsigned_popup_event_is_refused_and_nothing_is_recorded(stubs, web, query):
    import time as clock
    params = "&".join(f"{k}={v.format(now=int(clock.time()))}" for k, v in query.items())
    response = web.post("/wechat?" + params, data=popup_xml("oGrant05", {REMINDER_TPL: "accept"},
                                                               create_time=1_690_000_400), content_type="text/xml")
    assert response.status_code in (400, 403)
    assert grants("oGrant05", REMINDER_TPL) == 0 and events() == 0


def test_an_encrypted_popup_event_for_another_app_id_is_refused_and_nothing_is_recorded(app, stubs, web, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", APP_ID)
    response = post_encrypted(web, popup_xml("oGrant06", {REMINDER_TPL: "accept"}, create_time=1_690_000_500),
                              app_id="wxSomeoneElse000000")
    assert response.status_code == 403
    assert grants("oGrant06", REMINDER_TPL) == 0 and events() == 0


# --- the real sender against the stub's bizsend ------------------------------------------------------------------

def test_send_subscribe_posts_bizsend_with_the_template_and_data(stubs):
    wechat_stub, _ = stubs
    wechat_stub.grant_subscribe("oSender01", CONTACT_TPL)
    data = {"thing1": {"value": "王阿姨"}, "time2": {"value": "2031年03月12日 09:00"}}
    sender = transports.get().wechat
    sender.send_subscribe("oSender01", CONTACT_TPL, data, page="https://linli.test/a/1")

    (call,) = wechat_stub.calls_to(BIZSEND)
    assert call["json"] == {"touser": "oSender01", "template_id": CONTACT_TPL, "data": data,
                            "page": "https://linli.test/a/1"}
    assert call["response"]["errcode"] == 0
    # The one-time grant is spent at WeChat: a second message is refused (43101).
    with pytest.raises(WeChatApiError) as refused:
        sender.send_subscribe("oSender01", CONTACT_TPL, data)
    assert refused.value.errcode == 43101 and refused.value.no_grant and not refused.value.retryable


def test_an_unknown_template_or_a_too_long_value_is_refused_as_wechat_does(stubs):
    wechat_stub, _ = stubs
    wechat_stub.grant_subscribe("oSender02", CONTACT_TPL)
    sender = transports.get().wechat
    with pytest.raises(WeChatApiError) as unknown:
        sender.send_subscribe("oSender02", "tplNotOurs", {"thing1": {"value": "x"}})
    assert unknown.value.errcode == 40037
    with pytest.raises(WeChatApiError) as too_long:
        sender.send_subscribe("oSender02", CONTACT_TPL, {"thing1": {"value": "长" * 21}, "time2": {"value": "09:00"}})
    assert too_long.value.errcode == 47003
    assert wechat_stub.subscribe_grants_left("oSender02", CONTACT_TPL) == 1  # refused sends spend nothing


# --- reminders -------------------------------------------------------------------------------------------------

def test_a_reminder_with_a_grant_goes_by_subscribe_message_and_spends_the_grant(stubs, web):
    wechat_stub, twilio_stub = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "sent"

    (sent,) = subscribe_sends(wechat_stub)
    assert sent["touser"] == openid and sent["template_id"] == REMINDER_TPL
    assert sent["data"]["thing1"] == {"value": appointment.patient.name}
    assert sent["data"]["time2"] == {"value": "2031年03月12日 09:00"}
    assert sent["data"]["character_string4"] == {"value": f"{appointment.seat_no}号"}
    assert (row(rid).route, row(rid).status, row(rid).template) == ("subscribe", "sent", "booking_reminder")
    assert kefu_texts(wechat_stub) == [] and twilio_stub.sent_messages() == []
    assert grants(openid, REMINDER_TPL) == 0


def test_the_second_reminder_with_the_grant_spent_goes_by_kefu(stubs, web):
    wechat_stub, _ = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)
    first = send_reminder(appointment, "evening")
    delivery.deliver(outbound_id=first)

    second = send_reminder(appointment, "soon")
    assert delivery.deliver(outbound_id=second) == "sent"

    assert row(second).route == "kefu"
    assert len(subscribe_sends(wechat_stub)) == 1
    assert kefu_texts(wechat_stub) == [row(second).body]


def test_outside_the_window_and_without_a_grant_a_reminder_goes_by_sms(stubs, web):
    wechat_stub, twilio_stub = stubs
    appointment, openid = booked_with_conversation()
    wechat_stub.set_outside_window(openid)

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "rerouted"
    assert delivery.deliver(outbound_id=rid) == "sent"

    (sms,) = twilio_stub.sent_messages()
    assert sms["to"] == db.session.get(Resident, appointment.booked_by_resident_id).phone
    assert (row(rid).route, row(rid).channel) == ("sms", "sms")
    assert subscribe_sends(wechat_stub) == [] and wechat_stub.calls_to(BIZSEND) == []


def test_outside_the_window_a_granted_reminder_still_goes_by_subscribe_message(stubs, web):
    wechat_stub, twilio_stub = stubs
    appointment, openid = booked_with_conversation()
    wechat_stub.set_outside_window(openid)
    accept(web, wechat_stub, openid, REMINDER_TPL)

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "sent"
    assert row(rid).route == "subscribe" and twilio_stub.sent_messages() == []


def test_a_template_not_configured_never_goes_by_subscribe_message(app, stubs, web, monkeypatch):
    wechat_stub, _ = stubs
    monkeypatch.setitem(app.config, "WECHAT_SUBSCRIBE_TEMPLATES", json.dumps({"waitlist_offer": OFFER_TPL}))
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)

    rid = send_reminder(appointment, "evening")
    delivery.deliver(outbound_id=rid)
    assert row(rid).route == "kefu" and wechat_stub.calls_to(BIZSEND) == []
    assert grants(openid, REMINDER_TPL) == 1


def test_wechat_busy_gives_the_grant_back_and_the_retry_sends_the_subscribe_message(stubs, web):
    wechat_stub, _ = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)
    wechat_stub.fail(path=BIZSEND, code=-1)  # "system busy": refused before sending

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "pending"
    assert grants(openid, REMINDER_TPL) == 1 and kefu_texts(wechat_stub) == []

    assert delivery.deliver(outbound_id=rid, now=row(rid).next_attempt_at) == "sent"
    assert row(rid).route == "subscribe" and grants(openid, REMINDER_TPL) == 0


def test_a_template_wechat_refuses_gives_the_grant_back_and_the_reminder_goes_by_kefu(stubs, web):
    wechat_stub, _ = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)
    wechat_stub.fail(path=BIZSEND, code=40037)

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "sent"
    assert row(rid).route == "kefu" and grants(openid, REMINDER_TPL) == 1


def test_a_grant_wechat_no_longer_knows_ends_and_the_reminder_goes_by_kefu(stubs, web):
    wechat_stub, _ = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)
    wechat_stub.revoke_subscribe(openid, REMINDER_TPL)  # rejected in the settings; the change event was lost

    rid = send_reminder(appointment, "evening")
    assert delivery.deliver(outbound_id=rid) == "sent"
    assert row(rid).route == "kefu" and grants(openid, REMINDER_TPL) == 0
    assert [c["response"]["errcode"] for c in wechat_stub.calls_to(BIZSEND)] == [43101]


# --- waitlist offers -----------------------------------------------------------------------------------------

def _offer_notice(stubs, web, *, granted: bool, outside_window: bool = False):
    wechat_stub, _ = stubs
    slot, = clinic(capacity=1)
    holder, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=holder.id, slot_id=slot.id, now=NOW)
    waiting, _ = resident_with_patient(conversation=True)
    booking.join_waitlist(resident_id=waiting.id, department_id=slot.department_id, day=slot.local_date, now=NOW)
    openid = db.session.scalar(select(Conversation.address).where(Conversation.resident_id == waiting.id))
    if granted:
        accept(web, wechat_stub, openid, OFFER_TPL)
    if outside_window:
        wechat_stub.set_outside_window(openid)
    booking.cancel_appointment(resident_id=holder.id, appointment_id=appointment.id, now=NOW)
    notice = db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "waitlist_offer"))
    offer = db.session.scalar(select(SlotHold).where(SlotHold.kind == "offer"))
    return notice.id, openid, offer


def test_a_waitlist_offer_with_a_grant_goes_by_subscribe_message(stubs, web):
    wechat_stub, _ = stubs
    nid, openid, offer = _offer_notice(stubs, web, granted=True)

    assert delivery.deliver(outbound_id=nid, now=NOW) == "sent"

    (sent,) = subscribe_sends(wechat_stub)
    assert (sent["touser"], sent["template_id"]) == (openid, OFFER_TPL)
    assert sent["data"]["thing1"] == {"value": offer.patient.name}
    assert set(sent["data"]) == {"thing1", "time2", "thing3", "time4"}
    assert row(nid).route == "subscribe" and grants(openid, OFFER_TPL) == 0


def test_a_waitlist_offer_without_a_grant_goes_by_kefu_inside_the_window(stubs, web):
    wechat_stub, twilio_stub = stubs
    nid, _, _ = _offer_notice(stubs, web, granted=False)
    assert delivery.deliver(outbound_id=nid, now=NOW) == "sent"
    assert row(nid).route == "kefu"


def test_a_waitlist_offer_outside_the_window_without_a_grant_goes_by_sms(stubs, web):
    wechat_stub, twilio_stub = stubs
    nid, _, _ = _offer_notice(stubs, web, granted=False, outside_window=True)
    assert delivery.deliver(outbound_id=nid, now=NOW) == "rerouted"
    assert delivery.deliver(outbound_id=nid, now=NOW) == "sent"
    assert row(nid).route == "sms" and len(twilio_stub.sent_messages()) == 1
    assert wechat_stub.calls_to(BIZSEND) == []


def test_a_waitlist_offer_to_a_resident_who_unfollowed_the_account_goes_by_sms(stubs, web):
    """An unfollowed resident can get neither a subscribe message nor 客服: the offer must not lapse unseen."""
    wechat_stub, twilio_stub = stubs
    nid, openid, offer = _offer_notice(stubs, web, granted=True)
    ChannelIdentityFactory(resident=db.session.get(Resident, offer.resident_id), channel="wechat", external_id=openid)
    db.session.commit()
    bye = post_plain(web, event_xml(openid, "unsubscribe", create_time=next(_clock)))
    assert bye.get_data(as_text=True) == "success"

    assert delivery.deliver(outbound_id=nid, now=NOW) == "rerouted"
    assert delivery.deliver(outbound_id=nid, now=NOW) == "sent"

    (sms,) = twilio_stub.sent_messages()
    assert sms["to"] == db.session.get(Resident, offer.resident_id).phone
    assert (row(nid).route, row(nid).channel) == ("sms", "sms")
    assert wechat_stub.calls_to(BIZSEND) == [] and wechat_stub.calls_to(KEFU) == []
    assert db.session.get(Resident, offer.resident_id).wechat_subscribed is False


# --- one grant, many workers ------------------------------------------------------------------------------------

def test_workers_racing_for_one_grant_send_one_subscribe_message(app, stubs, web):
    wechat_stub, _ = stubs
    accept(web, wechat_stub, CONTACT_OPENID, CONTACT_TPL)
    wechat_stub.grant_subscribe(CONTACT_OPENID, CONTACT_TPL, times=5)  # WeChat would take more: only ours limits
    workers = 6
    barrier = threading.Barrier(workers)
    routes: list[str] = []

    def work(i: int) -> None:
        with app.app_context():
            barrier.wait()
            routes.append(outbox.notify_contact(openid=CONTACT_OPENID, phone=None, template="help_update",
                                                fields={"thing1": "王阿姨", "time2": "09:00"},
                                                body="王阿姨的求助已有人接手。", dedup_key=f"race-{i}"))
            db.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(routes) == ["kefu"] * (workers - 1) + ["subscribe"]
    # One grant, one attempt: no worker spent it a second time only to be refused by WeChat (43101).
    assert len(wechat_stub.calls_to(BIZSEND)) == 1
    assert grants(CONTACT_OPENID, CONTACT_TPL) == 0


def test_workers_delivering_one_reminder_at_once_send_one_subscribe_message(app, stubs, web):
    """The job and the sweeper's copy of it (or two sweepers) deliver the same row at the same moment."""
    wechat_stub, _ = stubs
    appointment, openid = booked_with_conversation()
    accept(web, wechat_stub, openid, REMINDER_TPL)
    wechat_stub.grant_subscribe(openid, REMINDER_TPL, times=3)  # WeChat would take more: only our grant limits
    rid = send_reminder(appointment, "evening")
    workers = 4
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def work() -> None:
        with app.app_context():
            barrier.wait()
            outcomes.append(delivery.deliver(outbound_id=rid, now=EVENING + timedelta(days=1)))
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes.count("sent") == 1
    assert len(wechat_stub.calls_to(BIZSEND)) == 1 and kefu_texts(wechat_stub) == []
    assert row(rid).route == "subscribe" and grants(openid, REMINDER_TPL) == 0


# --- contacts without a conversation ---------------------------------------------------------------------------

def _notify(dedup_key: str, *, openid=CONTACT_OPENID, phone=CONTACT_PHONE) -> str:
    return outbox.notify_contact(openid=openid, phone=phone, template="help_update",
                                 fields={"thing1": "王阿姨", "time2": "09:00"}, body="王阿姨的求助已有人接手。",
                                 dedup_key=dedup_key)


def test_notify_contact_takes_subscribe_then_kefu_then_sms_then_none(stubs, web):
    wechat_stub, twilio_stub = stubs
    accept(web, wechat_stub, CONTACT_OPENID, CONTACT_TPL)

    assert _notify("n1") == "subscribe"
    assert _notify("n2") == "kefu"  # grant spent, inside the window
    wechat_stub.set_outside_window(CONTACT_OPENID)
    assert _notify("n3") == "sms"
    assert _notify("n4", phone=None) == "none"

    (sent,) = subscribe_sends(wechat_stub)
    assert sent["data"] == {"thing1": {"value": "王阿姨"}, "time2": {"value": "09:00"}}
    assert kefu_texts(wechat_stub) == ["王阿姨的求助已有人接手。"]
    assert [(m["to"], m["body"]) for m in twilio_stub.sent_messages()] == [(CONTACT_PHONE, "王阿姨的求助已有人接手。")]


def test_notify_contact_with_a_dedup_key_used_before_sends_nothing_and_answers_the_first_route(stubs, web):
    wechat_stub, twilio_stub = stubs
    assert _notify("same", openid=None) == "sms"
    assert _notify("same", openid=None) == "sms"
    assert len(twilio_stub.sent_messages()) == 1


def test_notify_contact_never_raises_when_every_provider_fails(stubs, web):
    wechat_stub, twilio_stub = stubs
    wechat_stub.fail(code=-1, times=10)
    twilio_stub.fail(status=500, times=10)
    assert _notify("down") == "none"
