"""The escalation machine with recording transports: steps, claims, reruns, crashes, chain end and alarm."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, TicketEvent
from app.models.base import utcnow
from app.services.help import alerts as help_service
from app.services.help import escalation
from integrations.twilio import TwilioSendError
from tests.factories import ResidentFactory
from tests.helpers.help import add_contact, make_chain


def start(elder, now):
    alert = help_service.raise_alert(resident_id=elder.id, source="console", now=now)
    assert escalation.advance(alert_id=alert.id, round=1, step=0, now=now)
    return db.session.get(HelpAlert, alert.id)


def test_next_position_walks_the_chain_then_restarts_from_the_top_with_the_alarm():
    assert escalation.next_position(1, 0, 3) == (1, 1, False)
    assert escalation.next_position(1, 2, 3) == (1, 3, False)
    assert escalation.next_position(1, 3, 3) == (2, 1, True)
    assert escalation.next_position(4, 0, 0) == (5, 0, True)


def test_the_first_step_calls_and_texts_contact_1_and_is_due_after_ring_plus_wait(help_db, recorder):
    elder, contacts = make_chain()
    now = utcnow()
    alert = start(elder, now)

    assert (alert.round, alert.step) == (1, 1)
    assert alert.step_due_at == now + timedelta(seconds=90)
    assert [c.to for c in recorder.twilio.calls] == [contacts[0].phone]
    call = recorder.twilio.calls[0]
    assert call.twiml_url.startswith(f"http://linli.test/voice/alerts/{alert.id}/steps/")
    assert call.twiml_url.endswith("/twiml") and call.status_callback.endswith("/status")
    assert call.timeout_seconds == 30
    sms = recorder.twilio.sms[0]
    code = db.session.scalar(select(EscalationStep.short_code).where(EscalationStep.channel == "sms"))
    assert sms.to == contacts[0].phone and code in sms.body and elder.name in sms.body
    events = db.session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == alert.ticket_id)).all()
    assert any("第1轮第1步" in body and contacts[0].name in body for body in events)


def test_running_a_step_twice_places_no_second_call(help_db, recorder):
    elder, _ = make_chain()
    now = utcnow()
    alert = start(elder, now)

    assert not escalation.advance(alert_id=alert.id, round=1, step=0, now=now)  # the same job again
    for attempt_id in db.session.scalars(select(EscalationStep.id)).all():
        assert not escalation.place_attempt(step_id=attempt_id, now=now)
    assert len(recorder.twilio.calls) == 1 and len(recorder.twilio.sms) == 1


def test_a_worker_dying_between_claim_and_call_is_recovered_by_the_sweeper_with_one_call(help_db, recorder,
                                                                                           monkeypatch):
    elder, contacts = make_chain(channels="voice")
    now = utcnow()
    alert = help_service.raise_alert(resident_id=elder.id, source="console", now=now)
    # The job commits the move and its claimed attempt, then "dies" before handing it to Twilio.
    monkeypatch.setattr(escalation, "place_attempt", lambda **kw: None)
    monkeypatch.setattr(escalation, "expedite", lambda **kw: None)
    escalation.advance(alert_id=alert.id, round=1, step=0, now=now)
    monkeypatch.undo()
    assert recorder.twilio.calls == []
    assert db.session.scalar(select(EscalationStep.status)) == "pending"

    escalation.sweep(now=now + timedelta(seconds=5))  # within the grace: the original job may still be at it
    assert recorder.twilio.calls == []
    escalation.sweep(now=now + timedelta(seconds=11))
    escalation.sweep(now=now + timedelta(seconds=26))
    assert [c.to for c in recorder.twilio.calls] == [contacts[0].phone]


def test_an_attempt_left_dialing_by_a_dead_worker_is_never_redialled_and_the_chain_moves_on(help_db, recorder):
    elder, contacts = make_chain(channels="voice")
    now = utcnow()
    alert = start(elder, now)
    attempt = db.session.scalar(select(EscalationStep))
    attempt.status, attempt.external_sid = "dialing", None  # as if killed during the Twilio request
    db.session.commit()

    escalation.sweep(now=now + timedelta(seconds=30))
    assert len(recorder.twilio.calls) == 1
    # The sweeper queues the due move; run it as the worker would.
    assert escalation.advance(alert_id=alert.id, round=1, step=1, now=now + timedelta(seconds=91))
    assert [c.to for c in recorder.twilio.calls] == [contacts[0].phone, contacts[1].phone]
    escalation.sweep(now=now + timedelta(minutes=5))
    assert db.session.get(EscalationStep, attempt.id).status == "unknown"


def test_when_every_channel_of_a_step_fails_the_step_is_due_at_once(help_db, recorder):
    elder, contacts = make_chain()
    recorder.twilio.fail_next(TwilioSendError("down", status=500), TwilioSendError("down", status=500))
    now = utcnow()
    alert = start(elder, now)
    assert alert.step_due_at == now
    statuses = db.session.scalars(select(EscalationStep.status)).all()
    assert statuses == ["send_failed", "send_failed"]


def test_when_every_call_of_every_contact_fails_the_chain_goes_round_once_per_pause_not_at_once(help_db, recorder):
    elder, contacts = make_chain(n=2, channels="voice")
    recorder.twilio.fail_next(TwilioSendError("down", status=500), TwilioSendError("down", status=500))
    now = utcnow()
    alert = start(elder, now)
    assert alert.step_due_at == now  # not the last contact: on to the next at once
    assert escalation.advance(alert_id=alert.id, round=1, step=1, now=now)

    alert = db.session.get(HelpAlert, alert.id)
    assert (alert.round, alert.step) == (1, 2)
    assert alert.step_due_at == now + escalation.ROUND_PAUSE  # the last one: round 2 waits for the pause
    assert not escalation.advance(alert_id=alert.id, round=1, step=1, now=now)
    assert escalation.sweep(now=now + timedelta(seconds=29))["due"] == 0
    attempts = db.session.execute(select(EscalationStep.to_address, EscalationStep.status)
                                  .order_by(EscalationStep.id)).all()
    assert attempts == [(contacts[0].phone, "send_failed"), (contacts[1].phone, "send_failed")]


def test_a_chain_that_runs_out_restarts_from_the_top_and_raises_the_alarm(help_db, recorder):
    elder, contacts = make_chain(n=2, channels="voice")
    now = utcnow()
    alert = start(elder, now)
    assert escalation.advance(alert_id=alert.id, round=1, step=1, now=now + timedelta(seconds=90))
    assert not db.session.get(HelpAlert, alert.id).alarm
    assert escalation.advance(alert_id=alert.id, round=1, step=2, now=now + timedelta(seconds=180))

    alert = db.session.get(HelpAlert, alert.id)
    assert (alert.round, alert.step, alert.alarm, alert.status) == (2, 1, True, "escalating")
    assert [c.to for c in recorder.twilio.calls] == [contacts[0].phone, contacts[1].phone, contacts[0].phone]
    events = db.session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == alert.ticket_id)).all()
    assert any("第2轮从头开始" in body for body in events)


def test_a_resident_with_nobody_to_call_is_an_alarm_retried_every_minute(help_db, recorder):
    elder = ResidentFactory(is_elderly=True)
    db.session.commit()
    now = utcnow()
    alert = start(elder, now)
    assert (alert.round, alert.step, alert.alarm) == (2, 0, True)
    assert alert.step_due_at == now + timedelta(seconds=60)
    assert recorder.twilio.calls == []


def test_the_sweeper_moves_only_overdue_alerts(help_db, recorder, monkeypatch):
    elder, _ = make_chain()
    now = utcnow()
    alert = start(elder, now)
    moved = []
    monkeypatch.setattr(escalation.tasks, "later",
                        lambda name, **kw: moved.append((kw["alert_id"], kw["round_"], kw["step"])) or True)
    assert escalation.sweep(now=now + timedelta(seconds=89))["due"] == 0
    assert escalation.sweep(now=now + timedelta(seconds=90))["due"] == 1
    assert moved == [(alert.id, 1, 1)]


def test_the_sweeper_does_the_move_itself_when_redis_is_gone(help_db, recorder, monkeypatch):
    elder, contacts = make_chain(channels="voice")
    now = utcnow()
    alert = start(elder, now)
    monkeypatch.setattr(escalation.tasks, "later", lambda *a, **kw: False)
    escalation.sweep(now=now + timedelta(seconds=91))
    assert db.session.get(HelpAlert, alert.id).step == 2
    assert [c.to for c in recorder.twilio.calls] == [contacts[0].phone, contacts[1].phone]


def test_a_contact_reachable_only_on_wechat_gets_a_wechat_message(help_db, recorder):
    elder = ResidentFactory(is_elderly=True)
    db.session.commit()
    add_contact(elder.id, 1, phone=None, wechat_openid="o_son", channels="wechat")
    start(elder, utcnow())
    assert recorder.wechat.texts_to("o_son") and elder.name in recorder.wechat.texts_to("o_son")[0]
