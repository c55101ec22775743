"""Every authorization rule of the console, each tried by someone who should not get through."""
from __future__ import annotations

import re

import pytest

from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory, StreetFactory


def csrf_from(client, path="/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def login(client, staff, password="correct horse"):
    token = csrf_from(client)
    return client.post("/console/login", data={"username": staff.username, "password": password, "csrf_token": token})


@pytest.fixture
def street(session):
    return StreetFactory()


@pytest.fixture
def foreign_ticket(session):
    """A ticket of another street."""
    conversation = ConversationFactory()
    return tickets.open_ticket(street_id=conversation.resident.community.street_id, source="bot", subject="别的街道",
                               conversation_id=conversation.id)


@pytest.mark.parametrize("path", ["/console/", "/console/queue", "/console/tickets/1", "/console/knowledge",
                                  "/console/team", "/console/queue/rows", "/console/help"])
def test_pages_without_a_session_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login")


def test_polling_endpoints_without_a_session_answer_401(client):
    response = client.get("/console/api/counts")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "login_required"


def test_actions_without_a_session_change_nothing(client, foreign_ticket):
    token = csrf_from(client)
    response = client.post(f"/console/tickets/{foreign_ticket.id}/claim", data={"csrf_token": token})
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert foreign_ticket.assignee_id is None


def test_login_without_csrf_token_is_refused(client, street):
    staff = StaffFactory(street=street)
    response = client.post("/console/login", data={"username": staff.username, "password": "correct horse"})
    assert response.status_code == 400
    assert client.get("/console/queue").status_code == 302


def test_forms_without_csrf_token_are_refused(client, street):
    staff = StaffFactory(street=street)
    ticket = tickets.open_ticket(street_id=street.id, source="staff", subject="x")
    login(client, staff)
    for path in (f"/console/tickets/{ticket.id}/claim", f"/console/tickets/{ticket.id}/status", "/console/logout"):
        response = client.post(path, data={"status": "resolved"})
        assert response.status_code == 400, path
        assert "安全令牌" in response.get_data(as_text=True)
    response = client.post(f"/console/tickets/{ticket.id}/claim", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert ticket.assignee_id is None and ticket.status == "open"


def test_a_wrong_password_shows_the_form_again(client, street):
    staff = StaffFactory(street=street)
    response = login(client, staff, password="wrong")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)


def test_five_failures_from_one_address_refuse_the_console_login_there(client, street):
    # Refused for that name from that address, not locked for its owner (tests/security/test_sign_in_abuse.py).
    staff = StaffFactory(street=street)
    for _ in range(5):
        login(client, staff, password="wrong")
    response = login(client, staff)
    assert response.status_code == 429
    assert "次数过多" in response.get_data(as_text=True)
    assert client.get("/console/queue").status_code == 302


def test_another_streets_ticket_is_not_found(client, street, foreign_ticket):
    login(client, StaffFactory(street=street))
    token = csrf_from(client, "/console/queue")
    for path in (f"/console/tickets/{foreign_ticket.id}", f"/console/tickets/{foreign_ticket.id}/timeline"):
        assert client.get(path).status_code == 404, path
    for action, data in (("claim", {}), ("reply", {"body": "hi"}), ("note", {"body": "hi"}),
                         ("status", {"status": "resolved"}), ("priority", {"priority": "urgent"}),
                         ("assign", {"assignee_id": ""}), ("category", {"category": "x"})):
        response = client.post(f"/console/tickets/{foreign_ticket.id}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 404, action
    assert foreign_ticket.status == "open" and foreign_ticket.assignee_id is None
    assert foreign_ticket.priority == "normal"


def test_another_streets_ticket_is_not_in_any_queue(client, street, foreign_ticket):
    login(client, StaffFactory(street=street))
    for view in ("mine", "unassigned", "open", "breached", "resolved"):
        assert "别的街道" not in client.get(f"/console/queue?view={view}").get_data(as_text=True)
    assert client.get("/console/api/counts").get_json()["open"] == 0


def test_staff_get_403_on_team_lead_pages(client, street):
    staff = StaffFactory(street=street)
    login(client, staff)
    assert client.get("/console/team").status_code == 403
    token = csrf_from(client, "/console/queue")
    response = client.post(f"/console/team/{staff.id}/duty", data={"csrf_token": token, "on_duty": "0"})
    assert response.status_code == 403
    assert staff.on_duty is True


def test_team_leads_see_the_team_page(client, street):
    login(client, StaffFactory(street=street, role="admin"))
    assert client.get("/console/team").status_code == 200


def test_a_login_link_cannot_redirect_off_the_console(client, street):
    staff = StaffFactory(street=street)
    token = csrf_from(client)
    for target in ("https://evil.example/", "//evil.example/", "/console\\@evil"):
        response = client.post("/console/login", data={"username": staff.username, "password": "correct horse",
                                                       "csrf_token": token, "next": target})
        assert response.headers["Location"] == "/console/queue", target
        client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/queue")})
        token = csrf_from(client)


def test_logout_ends_the_session(client, street):
    login(client, StaffFactory(street=street))
    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/queue")})
    assert client.get("/console/queue").status_code == 302


def test_the_simulator_is_off_unless_configured(client, app, street, monkeypatch):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", False)
    login(client, StaffFactory(street=street))
    assert client.get("/console/simulator").status_code == 404
    token = csrf_from(client, "/console/queue")
    response = client.post("/console/simulator/send", json={"openid": "o_sim_1234", "text": "hi"},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 404


def test_console_pages_forbid_framing_and_inline_scripts(client, street):
    login(client, StaffFactory(street=street))
    response = client.get("/console/queue")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
