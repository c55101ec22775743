"""Staff and the bot around an alert: the console help board, staff actions, the bot's help request, voice auth."""
from __future__ import annotations

import re

import requests
from sqlalchemy import select

from app.core.extensions import db
from app.models import HelpAlert, Staff, Ticket
from app.models.base import utcnow
from app.services.help import alerts as help_service
from app.services.help import escalation
from tests.factories import ConversationFactory, StaffFactory
from tests.helpers.help import make_chain
from tests.helpers.help_calls import call_requests, drain


def _login(client, staff_id: int) -> str:
    # Through the form: a cookie naming the staff member is not a session without its server-side row.
    with client.application.app_context():
        username = db.session.get(Staff, staff_id).username
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/console/login").get_data(as_text=True))
    response = client.post("/console/login", data={"username": username, "password": "correct horse",
                                                   "csrf_token": token.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/console/help")
    assert page.status_code == 200
    return re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_the_board_shows_only_the_staff_members_street_and_its_actions_work(help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, contacts = make_chain(n=2, channels="voice")
        mine = StaffFactory(street=elder.community.street)
        other = StaffFactory()
        db.session.commit()
        alert = help_service.raise_alert(resident_id=elder.id, source="console")
        alert_id, mine_id, other_id, elder_name = alert.id, mine.id, other.id, elder.name
    drain(help_app)

    client = help_app.test_client()
    token = _login(client, mine_id)
    board = client.get("/console/help/alerts.json").get_json()
    assert [a["id"] for a in board["alerts"]] == [alert_id]
    assert board["alerts"][0]["current_contact"] == "联系人1" and board["alerts"][0]["timeline"]
    assert elder_name in client.get("/console/help/alerts").get_data(as_text=True)
    assert client.get("/console/help/board.js").mimetype == "application/javascript"

    assert client.post(f"/console/help/alerts/{alert_id}/note", data={"body": "已联系社区医生", "csrf_token": token}
                       ).status_code == 302
    assert client.post(f"/console/help/alerts/{alert_id}/accept", data={"csrf_token": token}).status_code == 302
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.accepted_staff_id, alert.accepted_via) == ("accepted", mine_id, "console")
    # Call again on an accepted alert reopens it from the top of the chain.
    client.post(f"/console/help/alerts/{alert_id}/call-again", data={"csrf_token": token})
    drain(help_app)
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.round, alert.step) == ("escalating", 2, 1)
    assert len(call_requests(twilio_stub)) == 2

    outsider = help_app.test_client()
    outsider_token = _login(outsider, other_id)
    assert outsider.get("/console/help/alerts.json").get_json()["alerts"] == []
    refused = outsider.post(f"/console/help/alerts/{alert_id}/resolve",
                            data={"outcome": "false_alarm", "csrf_token": outsider_token})
    assert refused.status_code == 404

    client.post(f"/console/help/alerts/{alert_id}/resolve",
                data={"outcome": "helped_at_home", "note": "老人摔倒，已扶起", "csrf_token": token})
    with help_app.app_context():
        alert = db.session.get(HelpAlert, alert_id)
        assert (alert.status, alert.outcome) == ("resolved", "helped_at_home")
        assert db.session.get(Ticket, alert.ticket_id).status == "resolved"
        assert alert.step_due_at is None
    assert client.get("/console/help/alerts.json").get_json()["alerts"] == []


def test_the_board_flags_the_alarm_when_the_chain_ran_out(help_db, served, twilio_stub):
    help_app, _ = served
    with help_app.app_context():
        elder, _ = make_chain(n=1, channels="voice")
        staff = StaffFactory(street=elder.community.street)
        db.session.commit()
        help_service.raise_alert(resident_id=elder.id, source="console")
        staff_id = staff.id
    drain(help_app)
    twilio_stub.status_callback(call_requests(twilio_stub)[0]["sid"], "no-answer")
    drain(help_app)
    client = help_app.test_client()
    _login(client, staff_id)
    board = client.get("/console/help/alerts.json").get_json()
    # The alarm is on at once; the next round waits out ROUND_PAUSE from the start of the last step.
    assert board["alarm"] and board["alerts"][0]["round"] == 1
    assert "报警" in client.get("/console/help/alerts").get_data(as_text=True)
    with help_app.app_context():
        escalation.sweep(now=utcnow() + escalation.ROUND_PAUSE)
    drain(help_app)
    assert client.get("/console/help/alerts.json").get_json()["alerts"][0]["round"] == 2
    assert len(call_requests(twilio_stub)) == 2


def test_the_bot_raises_help_for_the_sender_and_a_second_request_joins(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, _ = make_chain(n=1)
        conversation = ConversationFactory(resident=elder, bot_sender="wechat-help-1")
        db.session.commit()
    auth = {"Authorization": "Bearer test-bot-token"}
    first = requests.post(f"{base}/api/internal/help", json={"sender": "wechat-help-1"}, headers=auth, timeout=10)
    assert first.status_code == 201 and first.json()["alert"]["status"] == "escalating"
    second = requests.post(f"{base}/api/internal/help", json={"sender": "wechat-help-1"}, headers=auth, timeout=10)
    assert second.json()["alert"]["id"] == first.json()["alert"]["id"]
    unknown = requests.post(f"{base}/api/internal/help", json={"sender": "nobody"}, headers=auth, timeout=10)
    assert unknown.status_code == 404
    assert requests.post(f"{base}/api/internal/help", json={"sender": "x"}, timeout=10).status_code == 401
    del conversation


def test_voice_webhooks_without_a_valid_twilio_signature_are_refused(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, _ = make_chain(n=1, channels="voice")
        help_service.raise_alert(resident_id=elder.id, source="console")
    drain(help_app)
    call = call_requests(twilio_stub)[0]
    unsigned = requests.post(call["url"].rsplit("/", 1)[0] + "/gather", data={"Digits": "1"}, timeout=10)
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "invalid_twilio_signature"
    forged = requests.post(call["callback"], data={"CallStatus": "no-answer"},
                           headers={"X-Twilio-Signature": "AAAA"}, timeout=10)
    assert forged.status_code == 403
    with help_app.app_context():
        assert db.session.scalar(select(HelpAlert.status)) == "escalating"
