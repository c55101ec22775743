"""A help alert walks its chain against the Twilio stub (real twilio client, real HTTP both ways)."""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from sqlalchemy import select

from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, OutboundMessage, TicketEvent
from app.services.help import alerts as help_service
from tests.factories import ChannelIdentityFactory
from tests.helpers.help import make_chain, make_device
from tests.helpers.help_calls import call_requests, drain, gather_url, press


def test_no_answer_at_1_busy_at_2_and_press_1_at_3_is_accepted_by_contact_3(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=4, channels="voice")
        ChannelIdentityFactory(resident=elder, channel="sms", external_id=elder.phone)
        db.session.commit()
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
        elder_name, elder_address = elder.name, elder.address

    answer = press(base, uid, secret, "p-1")
    assert answer.status_code == 201, answer.text
    alert_id = answer.json()["alert"]["id"]
    drain(help_app)
    calls = call_requests(twilio_stub)
    assert [c["to"] for c in calls] == phones[:1]

    assert twilio_stub.status_callback(calls[0]["sid"], "no-answer").status_code == 204
    drain(help_app)
    calls = call_requests(twilio_stub)
    assert [c["to"] for c in calls] == phones[:2]

    assert twilio_stub.status_callback(calls[1]["sid"], "busy").status_code == 204
    drain(help_app)
    calls = call_requests(twilio_stub)
    assert [c["to"] for c in calls] == phones[:3]

    # Contact 3 answers: hears who and where, and is asked for one key.
    twiml = twilio_stub.post_signed(calls[2]["url"], {"CallSid": calls[2]["sid"], "CallStatus": "in-progress"})
    assert twiml.status_code == 200
    doc = ET.fromstring(twiml.text)
    first_say = doc.find("Say")
    assert first_say.get("language") == "zh-CN" and elder_name in first_say.text and elder_address in first_say.text
    gather = doc.find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action") == gather_url(calls[2])

    pressed = twilio_stub.post_signed(gather_url(calls[2]), {"CallSid": calls[2]["sid"], "Digits": "1"})
    assert "已确认由您前往" in pressed.text
    drain(help_app)

    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.accepted_contact_id, alert.accepted_via) == ("accepted", contacts[2].id, "voice")
        assert alert.step_due_at is None
        events = db.session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == alert.ticket_id)
                                    .order_by(TicketEvent.id)).all()
        assert any("无人接听" in e for e in events) and any("占线" in e for e in events)
        assert any(contacts[2].name in e and "接受" in e for e in events)
        notice = db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "notice",
                                                                 OutboundMessage.body.contains(contacts[2].name)))
        assert notice is not None and notice.to_address == elder.phone  # the resident is told who is coming
    # The contacts who were rung before are told it is taken; contact 4 was never rung.
    taken = {m["to"] for m in twilio_stub.sent_messages() if "无需再前往" in m["body"]}
    assert taken == set(phones[:2])
    # The completed callback after acceptance changes nothing and rings no one.
    twilio_stub.status_callback(calls[2]["sid"], "completed")
    drain(help_app)
    assert len(call_requests(twilio_stub)) == 3


def test_voicemail_answering_is_not_acceptance_and_press_2_passes(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
    alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
    drain(help_app)
    first = call_requests(twilio_stub)[0]
    # A voicemail picks up, hears the TwiML, presses nothing, the call completes.
    twilio_stub.post_signed(first["url"], {"CallSid": first["sid"], "AnsweredBy": "machine_start"})
    twilio_stub.status_callback(first["sid"], "completed")
    drain(help_app)
    second = call_requests(twilio_stub)[1]
    passed = twilio_stub.post_signed(gather_url(second), {"CallSid": second["sid"], "Digits": "2"})
    assert "下一位" in passed.text
    drain(help_app)
    assert [c["to"] for c in call_requests(twilio_stub)] == phones
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.step) == ("escalating", 3)


def test_sms_reply_1_from_a_contact_accepts_and_a_late_one_is_told_it_is_taken(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="sms")
        uid, secret = make_device(elder.id)
        phone, contact_id = contacts[0].phone, contacts[0].id
    alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
    drain(help_app)
    request_sms = twilio_stub.sent_messages()[0]
    assert request_sms["to"] == phone and "回复1" in request_sms["body"]
    with help_app.app_context():
        assert help_service.accept_by_sms(from_phone=phone, text="收到！")
        assert not help_service.accept_by_sms(from_phone="+8613999999999", text="1")  # not a contact: the bot's
        assert not help_service.accept_by_sms(from_phone=phone, text="你好")
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.accepted_contact_id, alert.accepted_via) == ("accepted", contact_id, "sms")
        attempt = db.session.scalar(select(EscalationStep).where(EscalationStep.alert_id == alert_id))
        assert attempt.status == "accepted"
    drain(help_app)
    assert any(m["to"] == phone and "已确认由您前往" in m["body"] for m in twilio_stub.sent_messages())
    # A second "1" after the alert is taken is still an answer to us, not a message for the bot.
    with help_app.app_context():
        assert help_service.accept_by_sms(from_phone=phone, text="1")


def test_two_contacts_accepting_at_the_same_moment_only_one_wins(help_db, served, twilio_stub):
    help_app, base = served
    for attempt_no in range(5):
        with help_app.app_context():
            elder, contacts = make_chain(n=3, channels="voice,sms", name=f"老人{attempt_no}")
            alert = help_service.raise_alert(resident_id=elder.id, source="console")
            alert_id, sms_phone = alert.id, contacts[0].phone
            contact_ids = [c.id for c in contacts]
        twilio_stub.reset()
        drain(help_app)  # step 1: contact 1 called and texted
        first = call_requests(twilio_stub)[0]
        twilio_stub.status_callback(first["sid"], "no-answer")
        drain(help_app)  # step 2: contact 2 called
        second = call_requests(twilio_stub)[1]
        barrier = threading.Barrier(2)
        results = {}

        def by_sms():
            with help_app.app_context():
                barrier.wait()
                results["sms"] = help_service.accept_by_sms(from_phone=sms_phone, text="1")

        def by_call():
            barrier.wait()
            results["voice"] = twilio_stub.post_signed(gather_url(second), {"CallSid": second["sid"], "Digits": "1"})

        threads = [threading.Thread(target=by_sms), threading.Thread(target=by_call)]
        [t.start() for t in threads]
        [t.join(20) for t in threads]
        with help_app.app_context():
            alert = db.session.get(HelpAlert, alert_id)
            assert alert.status == "accepted"
            accepted_events = db.session.scalars(select(TicketEvent).where(
                TicketEvent.ticket_id == alert.ticket_id, TicketEvent.body.contains("接受了求助"))).all()
            assert len(accepted_events) == 1
            voice_won = "已确认由您前往" in results["voice"].text
            assert voice_won == (alert.accepted_via == "voice")
            assert alert.accepted_contact_id == (contact_ids[1] if voice_won else contact_ids[0])
