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
