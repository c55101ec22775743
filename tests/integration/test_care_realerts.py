"""An accepted alert nobody closes rings again (its acceptor first, then the chain); the watchdog lists steps
overdue by more than 5 minutes in the console and in /healthz's detail."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.core.extensions import db
from app.models import HelpAlert
from app.models.base import utcnow
from app.services import care
from app.services.help import alerts as help_alerts
from tests.factories import StaffFactory
from tests.helpers.help import make_chain
from tests.helpers.help_calls import call_requests, drain, gather_url
from tests.integration.test_help_board import _login


def test_an_accepted_alert_left_open_rings_its_acceptor_then_the_chain(help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        phones, contact_ids = [c.phone for c in contacts], [c.id for c in contacts]
        alert_id = help_alerts.raise_alert(resident_id=elder.id, source="console").id
    drain(help_app)
    twilio_stub.status_callback(call_requests(twilio_stub)[0]["sid"], "no-answer")
    drain(help_app)
    second = call_requests(twilio_stub)[1]
    assert "已确认由您前往" in twilio_stub.post_signed(gather_url(second), {"CallSid": second["sid"],
                                                                       "Digits": "1"}).text
    with help_app.app_context():
        assert care.realert_accepted() == 0  # just accepted: within the limit
        limit = help_app.config["HELP_REALERT_MINUTES"]
        later = utcnow() + timedelta(minutes=limit + 1)
        assert care.realert_accepted(now=later) == 1
        assert care.realert_accepted(now=later) == 0  # once per acceptance
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.round, alert.lead_contact_id) == ("escalating", 2, contact_ids[1])
    drain(help_app)
    assert [c["to"] for c in call_requests(twilio_stub)] == [phones[0], phones[1], phones[1]]  # the acceptor
    twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
    drain(help_app)
    assert call_requests(twilio_stub)[-1]["to"] == phones[0]  # then the chain from the top


def test_the_watchdog_lists_steps_overdue_by_more_than_5_minutes_on_the_board_and_in_healthz(
        help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, _ = make_chain(n=2, channels="voice")
        staff = StaffFactory(street=elder.community.street)
        db.session.commit()
        staff_id = staff.id
        alert_id = help_alerts.raise_alert(resident_id=elder.id, source="console").id
    drain(help_app)
    client = help_app.test_client()
    assert client.get("/healthz").get_json()["detail"]["overdue_escalation_steps"] == []
    with help_app.app_context():
        db.session.execute(update(HelpAlert).where(HelpAlert.id == alert_id)
                           .values(step_due_at=utcnow() - timedelta(minutes=4)))
        db.session.commit()
        assert care.overdue_steps() == []  # late, but not yet 5 minutes
        db.session.execute(update(HelpAlert).where(HelpAlert.id == alert_id)
                           .values(step_due_at=utcnow() - timedelta(minutes=6)))
        db.session.commit()
        assert db.session.scalar(select(HelpAlert.status)) == "escalating"
    overdue = client.get("/healthz").get_json()["detail"]["overdue_escalation_steps"]
    assert [(s["alert_id"], s["round"], s["step"]) for s in overdue] == [(alert_id, 1, 1)]
    assert overdue[0]["overdue_seconds"] >= 360
    _login(client, staff_id)
    board = client.get("/console/help/alerts.json").get_json()
    assert [s["alert_id"] for s in board["overdue_steps"]] == [alert_id]
    assert "呼叫停滞" in client.get("/console/help").get_data(as_text=True)


def test_an_alert_accepted_at_the_console_and_left_open_rings_the_accepting_staff_member_first(
        help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, contacts = make_chain(n=2, channels="voice")
        staff = StaffFactory(street=elder.community.street, on_duty=False, phone="+8613600000009")
        db.session.commit()
        phones, staff_id = [c.phone for c in contacts], staff.id
        alert_id = help_alerts.raise_alert(resident_id=elder.id, source="console").id
    drain(help_app)
    client = help_app.test_client()
    token = _login(client, staff_id)
    assert client.post(f"/console/help/alerts/{alert_id}/accept", data={"csrf_token": token}).status_code == 302
    with help_app.app_context():
        later = utcnow() + timedelta(minutes=help_app.config["HELP_REALERT_MINUTES"] + 1)
        assert care.realert_accepted(now=later) == 1
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.round, alert.lead_staff_id) == ("escalating", 2, staff_id)
    drain(help_app)
    assert [c["to"] for c in call_requests(twilio_stub)] == [phones[0], "+8613600000009"]  # the acceptor first
    twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
    drain(help_app)
    assert call_requests(twilio_stub)[-1]["to"] == phones[0]  # then the chain from the top


def test_a_missed_check_in_accepted_by_the_on_duty_staff_call_rings_that_staff_member_first_when_left_open(
        help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, contacts = make_chain(n=1, channels="voice")
        care.enrol(resident_id=elder.id, due_time="09:00", now=utcnow() - timedelta(days=2))
        staff = StaffFactory(street=elder.community.street, on_duty=True, phone="+8613600000001")
        db.session.commit()
        elder_phone, contact_phone, staff_id = elder.phone, contacts[0].phone, staff.id
        alert_id = help_alerts.raise_alert(resident_id=elder.id, source="checkin", lead_resident=True).id
    drain(help_app)
    for _ in range(2):  # the resident, then the contact: no answer
        twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
        drain(help_app)
    on_duty = call_requests(twilio_stub)[-1]
    assert [c["to"] for c in call_requests(twilio_stub)] == [elder_phone, contact_phone, "+8613600000001"]
    twilio_stub.post_signed(gather_url(on_duty), {"CallSid": on_duty["sid"], "Digits": "1"})
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.accepted_staff_id) == ("accepted", staff_id)
        later = utcnow() + timedelta(minutes=help_app.config["HELP_REALERT_MINUTES"] + 1)
        assert care.realert_accepted(now=later) == 1
        assert db.session.get(HelpAlert, alert_id).lead_staff_id == staff_id
    drain(help_app)
    assert call_requests(twilio_stub)[-1]["to"] == "+8613600000001"  # the acceptor before the resident
    twilio_stub.status_callback(call_requests(twilio_stub)[-1]["sid"], "no-answer")
    drain(help_app)
    assert call_requests(twilio_stub)[-1]["to"] == elder_phone


def test_the_watchdog_lists_an_accepted_alert_whose_re_alert_is_overdue_by_more_than_5_minutes(
        help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, _ = make_chain(n=2, channels="voice")
        staff = StaffFactory(street=elder.community.street)
        db.session.commit()
        staff_id = staff.id
        alert_id = help_alerts.raise_alert(resident_id=elder.id, source="console").id
    drain(help_app)
    with help_app.app_context():
        help_alerts.accept_by_staff(alert_id=alert_id, staff_id=staff_id)
        limit = help_app.config["HELP_REALERT_MINUTES"]
        for minutes, listed in ((limit + 4, False), (limit + 6, True)):  # the re-alert was due at `limit`
            db.session.execute(update(HelpAlert).where(HelpAlert.id == alert_id)
                               .values(accepted_at=utcnow() - timedelta(minutes=minutes)))
            db.session.commit()
            assert [s["alert_id"] for s in care.overdue_steps()] == ([alert_id] if listed else [])
    client = help_app.test_client()
    overdue = client.get("/healthz").get_json()["detail"]["overdue_escalation_steps"]
    assert [(s["alert_id"], s["kind"]) for s in overdue] == [(alert_id, "realert")]
    assert 360 <= overdue[0]["overdue_seconds"] < 420 and "resident" not in overdue[0]
    _login(client, staff_id)
    assert [(s["alert_id"], s["kind"]) for s in client.get("/console/help/alerts.json").get_json()["overdue_steps"]] \
        == [(alert_id, "realert")]
    assert "再次呼叫已超时" in client.get("/console/help").get_data(as_text=True)
    with help_app.app_context():
        assert care.realert_accepted() == 1  # the re-alert runs at last: nothing is overdue any more
        assert care.overdue_steps() == []
