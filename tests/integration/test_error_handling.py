"""Bad input gets a 4xx with a JSON error body naming the problem, never a 500."""
from __future__ import annotations

AUTH = {"Authorization": "Bearer test-bot-token"}


def _error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]


def test_malformed_json_body_is_a_400(client):
    response = client.post("/api/internal/handoff", data="{not json", headers={**AUTH, "Content-Type": "application/json"})
    error = _error(response, 400)
    assert error["code"]


def test_a_field_of_the_wrong_type_is_a_422_naming_the_field(client):
    response = client.post("/api/internal/handoff", json={"sender": 42, "reason": "handoff"}, headers=AUTH)
    error = _error(response, 422)
    assert error["code"] == "validation_error"
    assert "sender" in str(error.get("details"))


def test_an_unknown_sender_is_a_404_with_its_code(client):
    response = client.post("/api/internal/handoff", json={"sender": "nobody", "reason": "handoff"}, headers=AUTH)
    assert _error(response, 404)["code"] == "unknown_sender"


def test_an_unknown_faq_topic_is_a_404(client):
    assert _error(client.get("/api/internal/faq/no_such_topic", headers=AUTH), 404)["code"] == "not_found"


def test_the_internal_api_refuses_a_wrong_service_token(client):
    response = client.get("/api/internal/faq/x", headers={"Authorization": "Bearer wrong"})
    assert _error(response, 401)["code"] == "invalid_service_token"


def test_an_unknown_route_is_a_json_404(client):
    assert _error(client.get("/no/such/route"), 404)


def test_handoff_opens_one_ticket_per_conversation(client, session):
    from tests.factories import CommunityFactory, ConversationFactory, ResidentFactory

    resident = ResidentFactory(community=CommunityFactory())
    conversation = ConversationFactory(resident=resident)
    first = client.post("/api/internal/handoff", json={"sender": conversation.bot_sender, "reason": "handoff",
                                                        "text": "我要找人"}, headers=AUTH)
    second = client.post("/api/internal/handoff", json={"sender": conversation.bot_sender, "reason": "fallback"},
                         headers=AUTH)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["ticket"]["id"] == second.get_json()["ticket"]["id"]
    assert first.get_json()["ticket"]["status"] == "open"
