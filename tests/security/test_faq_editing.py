"""Shared FAQ answers are edited by team leads only.

The attack this closes: the FAQ is one table the bot reads for every street's residents, and any member of staff
of any street could rewrite an answer (a phone number, an address, a fee), which every resident then got from the
bot at once. Editing is now an admin's (a team lead's) right, refused in the service and on the console page;
staff still read the answers.
"""
from __future__ import annotations

import pytest

from app.core.errors import Forbidden
from app.models import FaqArticle
from app.services import knowledge
from tests.factories import StaffFactory, StreetFactory
from tests.integration.test_console_auth import csrf_from, login

TOPIC = "clinic_hours_security"


@pytest.fixture
def article(session):
    row = FaqArticle(topic=TOPIC, title="开门时间", answer="周一至周五 8:00-17:00")
    session.add(row)
    session.commit()
    return row


def edit(browser, title="开门时间", answer="请拨打 400-000-0000 咨询（假冒）"):
    return browser.post(f"/console/knowledge/{TOPIC}", data={"csrf_token": csrf_from(browser, "/console/knowledge"),
                                                             "title": title, "answer": answer})


def bot_answer(app) -> str:
    response = app.test_client().get(f"/api/internal/faq/{TOPIC}",
                                     headers={"Authorization": f"Bearer {app.config['BOT_SERVICE_TOKEN']}"})
    return response.get_json()["answer"]


def test_a_staff_member_cannot_edit_a_shared_answer(client, app, session, article):
    login(client, StaffFactory(street=StreetFactory()))
    response = edit(client)
    assert response.status_code == 403
    session.expire_all()
    assert session.get(FaqArticle, article.id).answer == "周一至周五 8:00-17:00"
    assert bot_answer(app) == "周一至周五 8:00-17:00"


def test_staff_still_read_the_answers(client, article):
    login(client, StaffFactory(street=StreetFactory()))
    page = client.get("/console/knowledge")
    assert page.status_code == 200 and "周一至周五 8:00-17:00" in page.get_data(as_text=True)


def test_the_service_refuses_a_staff_member_too(session, article):
    with pytest.raises(Forbidden):
        knowledge.update_answer(topic=TOPIC, title="x", answer="y", actor=StaffFactory())
    session.expire_all()
    assert session.get(FaqArticle, article.id).answer == "周一至周五 8:00-17:00"


def test_a_team_lead_edits_a_shared_answer(client, app, session, article):
    lead = StaffFactory(street=StreetFactory(), role="admin")
    login(client, lead)
    response = edit(client, answer="周一至周六 8:00-17:00")
    assert response.status_code == 302
    assert bot_answer(app) == "周一至周六 8:00-17:00"
    session.expire_all()
    assert session.get(FaqArticle, article.id).updated_by_id == lead.id
