"""Who may accept an alert, by which words, and what staff may do with it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.errors import InvalidTransition, ValidationFailed
from app.core.extensions import db
from app.models import EscalationStep, HelpAlert
from app.models.base import utcnow
from app.services.help import alerts as help_service
from app.services.help import escalation
from tests.factories import StaffFactory
from tests.helpers.help import make_chain


def _started(n=2, channels="voice,sms"):
    elder, contacts = make_chain(n=n, channels=channels)
    now = utcnow()
    alert = help_service.raise_alert(resident_id=elder.id, source="console", now=now)
    escalation.advance(alert_id=alert.id, round=1, step=0, now=now)
    return elder, contacts, alert.id, now


@pytest.mark.parametrize("text", ["1", " １ ", "收到", "收到！", "1。"])
def test_plain_acceptance_words_from_the_asked_phone_accept(help_db, recorder, text):
    _, contacts, alert_id, _ = _started()
    assert help_service.accept_by_sms(from_phone=contacts[0].phone, text=text)
    assert db.session.get(HelpAlert, alert_id).status == "accepted"


def test_the_short_code_accepts_and_a_wrong_code_is_not_ours(help_db, recorder):
    _, contacts, alert_id, _ = _started()
    code = db.session.scalar(select(EscalationStep.short_code).where(EscalationStep.channel == "sms"))
    wrong = "0000" if code != "0000" else "1111"
    assert not help_service.accept_by_sms(from_phone=contacts[0].phone, text=wrong)
    assert help_service.accept_by_sms(from_phone=contacts[0].phone, text=code)
    assert db.session.get(HelpAlert, alert_id).accepted_contact_id == contacts[0].id


def test_a_phone_never_asked_or_asked_long_ago_goes_to_the_bot(help_db, recorder):
    _, contacts, _, now = _started()
    assert not help_service.accept_by_sms(from_phone=contacts[1].phone, text="1")  # not reached yet
    assert not help_service.accept_by_sms(from_phone=contacts[0].phone, text="1", now=now + timedelta(hours=3))


def test_a_second_acceptance_loses_and_staff_get_a_conflict(help_db, recorder):
    elder, contacts, alert_id, _ = _started()
    staff = StaffFactory(street=elder.community.street)
    db.session.commit()
    assert help_service.accept(alert_id=alert_id, via="sms", contact_id=contacts[0].id)
    assert not help_service.accept(alert_id=alert_id, via="voice", contact_id=contacts[1].id)
    with pytest.raises(InvalidTransition):
        help_service.accept_by_staff(alert_id=alert_id, staff_id=staff.id)
    assert db.session.get(HelpAlert, alert_id).accepted_contact_id == contacts[0].id


def test_resolving_needs_a_known_outcome_and_stops_the_escalation(help_db, recorder):
    elder, _, alert_id, now = _started()
    staff = StaffFactory(street=elder.community.street)
    db.session.commit()
    with pytest.raises(ValidationFailed):
        help_service.resolve_alert(alert_id=alert_id, staff_id=staff.id, outcome="whatever")
    help_service.resolve_alert(alert_id=alert_id, staff_id=staff.id, outcome="false_alarm")
    calls = len(recorder.twilio.calls)
    assert escalation.sweep(now=now + timedelta(hours=1))["due"] == 0
    assert not escalation.advance(alert_id=alert_id, round=1, step=1, now=now + timedelta(hours=1))
    assert len(recorder.twilio.calls) == calls
    with pytest.raises(InvalidTransition):
        help_service.resolve_alert(alert_id=alert_id, staff_id=staff.id, outcome="false_alarm")


def test_a_new_alert_after_a_resolved_one_starts_a_new_chain(help_db, recorder):
    elder, _, alert_id, _ = _started()
    staff = StaffFactory(street=elder.community.street)
    db.session.commit()
    help_service.resolve_alert(alert_id=alert_id, staff_id=staff.id, outcome="false_alarm")
    again = help_service.raise_alert(resident_id=elder.id, source="wechat_menu")
    assert again.id != alert_id and again.status == "escalating"
