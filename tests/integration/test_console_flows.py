"""The console used the way staff use it: queue, claim, reply, note, resolve, knowledge base, simulator."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import ChannelIdentity, Conversation, FaqArticle, OutboundMessage
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory
from tests.integration.test_console_auth import csrf_from, login


@pytest.fixture
def desk(client, session):
    conversation = ConversationFactory()
    street = conversation.resident.community.street
    staff = StaffFactory(street=street)
    ticket = tickets.open_ticket(street_id=street.id, source="bot", subject="楼道灯坏了", conversation_id=conversation.id,
                                 resident_id=conversation.resident_id)
    login(client, staff)
    return ticket, staff, conversation, csrf_from(client, "/console/queue")


def test_the_unassigned_queue_lists_the_ticket_with_counts(client, desk):
    ticket, *_ = desk
    page = client.get("/console/queue?view=unassigned").get_data(as_text=True)
    assert "楼道灯坏了" in page and "认领" in page
    assert client.get("/console/api/counts").get_json()["unassigned"] == 1
    rows = client.get("/console/queue/rows?view=mine").get_data(as_text=True)
    assert "楼道灯坏了" not in rows


def test_claim_reply_note_and_resolve_from_the_ticket_page(client, session, desk):
    ticket, staff, conversation, token = desk
    assert client.get(f"/console/tickets/{ticket.id}").status_code == 200
    client.post(f"/console/tickets/{ticket.id}/claim", data={"csrf_token": token})
    assert ticket.assignee_id == staff.id
    response = client.post(f"/console/tickets/{ticket.id}/reply", data={"csrf_token": token, "body": "师傅下午到"},
                           follow_redirects=True)
    assert "回复已发送" in response.get_data(as_text=True)
    client.post(f"/console/tickets/{ticket.id}/note", data={"csrf_token": token, "body": "已联系物业王经理"})
    client.post(f"/console/tickets/{ticket.id}/status", data={"csrf_token": token, "status": "resolved"})
    session.refresh(ticket)
    assert ticket.status == "resolved"
    sent = session.scalars(select(OutboundMessage.body).where(OutboundMessage.conversation_id == conversation.id)
                           .order_by(OutboundMessage.id)).all()
    assert sent == ["师傅下午到", tickets.CSAT_QUESTION]  # the note is not among them
    timeline = client.get(f"/console/tickets/{ticket.id}/timeline").get_data(as_text=True)
    assert "师傅下午到" in timeline and "已联系物业王经理" in timeline and "已解决" in timeline


def test_reply_and_wait_sets_the_ticket_pending(client, desk):
    ticket, _, _, token = desk
    client.post(f"/console/tickets/{ticket.id}/reply", data={"csrf_token": token, "body": "/nope x", "then": "pending"})
    client.post(f"/console/tickets/{ticket.id}/reply", data={"csrf_token": token, "body": "请发张照片", "then": "pending"})
    assert ticket.status == "pending"


def test_a_refused_transition_is_explained_on_the_page(client, desk):
    ticket, _, _, token = desk
    response = client.post(f"/console/tickets/{ticket.id}/status", data={"csrf_token": token, "status": "closed"},
                           headers={"Referer": f"http://localhost/console/tickets/{ticket.id}"}, follow_redirects=True)
    assert response.status_code == 200
    assert "自动关闭" in response.get_data(as_text=True)
    assert ticket.status == "open"


def test_reassigning_without_a_reason_is_explained(client, session, desk):
    ticket, staff, _, token = desk
    colleague = StaffFactory(street=staff.street)
    client.post(f"/console/tickets/{ticket.id}/claim", data={"csrf_token": token})
    response = client.post(f"/console/tickets/{ticket.id}/assign", data={"csrf_token": token,
                           "assignee_id": str(colleague.id)}, follow_redirects=True)
    assert "原因" in response.get_data(as_text=True)
    client.post(f"/console/tickets/{ticket.id}/assign", data={"csrf_token": token, "assignee_id": str(colleague.id),
                                                              "reason": "他熟悉这个小区"})
    assert ticket.assignee_id == colleague.id


def test_an_edited_faq_answer_is_what_the_bot_gets_next(client, app, session):
    login(client, StaffFactory(role="admin"))  # a team lead: the answers are every street's (tests/security)
    token = csrf_from(client, "/console/knowledge")
    session.add(FaqArticle(topic="clinic_hours_test", title="开门时间", answer="8点"))
    session.flush()
    client.post("/console/knowledge/clinic_hours_test", data={"csrf_token": token, "title": "开门时间",
                                                              "answer": "周一至周六 8:00-17:00"})
    bot = app.test_client().get("/api/internal/faq/clinic_hours_test",
                                headers={"Authorization": f"Bearer {app.config['BOT_SERVICE_TOKEN']}"})
    assert bot.get_json()["answer"] == "周一至周六 8:00-17:00"


def test_the_simulator_posts_signed_xml_to_the_webhook_and_shows_the_outbox(client, app, session, desk, monkeypatch):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    ticket, staff, _, token = desk
    openid = "o_sim_console_test"
    assert client.get("/console/simulator").status_code == 200
    response = client.post("/console/simulator/send", json={"openid": openid, "text": "你好"},
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == 200  # the webhook accepted the signature
    conversation = session.scalar(select(Conversation).where(Conversation.address == openid))
    assert conversation is not None  # the message went through the real channel path
    assert session.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == openid)) is not None
    feed = client.get(f"/console/simulator/feed?openid={openid}").get_json()
    assert isinstance(feed["messages"], list)


def test_the_simulator_refuses_bad_openids(client, app, desk, monkeypatch):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    *_, token = desk
    response = client.post("/console/simulator/send", json={"openid": "<script>", "text": "hi"},
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 422
    response = client.post("/console/simulator/send", json={"openid": "o_sim_ok_123", "text": "hi"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 400  # no CSRF token

