"""Work orders in the console: dispatch from the ticket page, the department's queue and forms, the departments
page, and refusals shown as 4xx without a change (issue 21)."""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from flask import g
from PIL import Image
from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Street, TicketEvent, WorkDepartment
from app.services import tickets, workorders
from tests.factories import ConversationFactory, ResidentFactory
from tests.helpers.authorization import console_csrf, sign_in_console
from tests.helpers.mobile import image_bytes
from tests.helpers.workorders import build_world, open_ticket
from tests.reliability.support import request_scoped_client


@pytest.fixture
def w(app, committed):
    """The world's ids, and its staff's user names in `names` (the rows leave the session between requests)."""
    world = build_world()
    ids = SimpleNamespace(**{key: row.id for key, row in vars(world).items()})
    ids.names = {key: row.username for key, row in vars(world).items() if hasattr(row, "username")}
    return ids


def signed_in(app, username: str):
    """A browser of its own (an app context per request, as in production), signed in; and its CSRF token."""
    client = request_scoped_client(app)
    # The test's app context is every request's: forget the previous browser's user and CSRF token.
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    sign_in_console(client, username)
    return client, console_csrf(client)


def test_dispatch_answer_and_complete_from_the_ticket_page(app, w):
    conversation = ConversationFactory(resident__community__street=db.session.get(Street, w.street))
    ticket = open_ticket(db.session.get(Street, w.street), subject="井盖松动", conversation_id=conversation.id,
                         resident_id=conversation.resident_id)
    ticket_id = ticket.id
    client, token = signed_in(app, w.names["dispatcher"])
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="dispatch"' in page and "物业" in page and "城管" in page
    client.post(f"/console/tickets/{ticket_id}/dispatch", data={"csrf_token": token, "department_id": w.property})

    client, token = signed_in(app, w.names["member"])
    assert "井盖松动" in client.get("/console/workorders").get_data(as_text=True)
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="complete"' in page and 'id="respond"' in page
    client.post(f"/console/tickets/{ticket_id}/respond", data={"csrf_token": token, "body": "已安排维修"})
    client.post(f"/console/tickets/{ticket_id}/complete", data={"csrf_token": token, "note": "已加固"})
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert "已办结" in page and "等待居民回复" in page and "派单至“物业”" in page

    client, token = signed_in(app, w.names["city"])  # another department: the queue does not show it
    assert "井盖松动" not in client.get("/console/workorders").get_data(as_text=True)


def test_refusals_are_4xx_with_their_code_and_change_nothing(app, w):
    ticket_id = open_ticket(db.session.get(Street, w.street)).id
    client, token = signed_in(app, w.names["dispatcher"])
    events = db.session.scalar(select(func.count(TicketEvent.id)))
    answer = client.post(f"/console/tickets/{ticket_id}/dispatch", data={"csrf_token": token,
                         "department_id": w.foreign}, headers={"Accept": "application/json"})
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "department_not_found")
    client.post(f"/console/tickets/{ticket_id}/dispatch", data={"csrf_token": token, "department_id": w.urban})
    answer = client.post(f"/console/tickets/{ticket_id}/complete", data={"csrf_token": token},
                         headers={"Accept": "application/json"})
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (403, "not_your_department")
    assert workorders.work_order_of(ticket_id=ticket_id).state == "dispatched"
    assert db.session.scalar(select(func.count(TicketEvent.id))) == events + 1  # the dispatch only

    # Another street's team lead: the ticket does not exist for them.
    client, token = signed_in(app, w.names["other_admin"])
    for step in ("dispatch", "transfer", "return", "oversee", "respond", "complete"):
        answer = client.post(f"/console/tickets/{ticket_id}/{step}", data={"csrf_token": token, "reason": "x",
                             "note": "x", "body": "x", "department_id": w.foreign})
        assert answer.status_code == 404, step
    assert workorders.work_order_of(ticket_id=ticket_id).department_id == w.urban


def test_team_leads_set_up_departments_and_staff_only_read_them(app, w):
    client, token = signed_in(app, w.names["admin"])
    client.post("/console/departments", data={"csrf_token": token, "name": "民政", "lead_id": w.city})
    civil = db.session.scalar(select(WorkDepartment.id).where(WorkDepartment.name == "民政",
                                                              WorkDepartment.street_id == w.street))
    client.post("/console/departments/members", data={"csrf_token": token, "department_id": civil,
                                                      "staff_id": w.member})
    client.post("/console/departments/limits", data={"csrf_token": token, "category": "report", "priority": "",
                                                     "response_minutes": "30", "handling_minutes": "1440"})
    page = client.get("/console/departments").get_data(as_text=True)
    assert "民政" in page and "report / 全部：响应 30 分钟，办理 1440 分钟" in page
    assert {s.id for s in workorders.members_of(department_id=civil)} == {w.city, w.member}
    # Another street's department in the form: not found, nothing added.
    answer = client.post("/console/departments/members", data={"csrf_token": token, "department_id": w.foreign,
                                                              "staff_id": w.member})
    assert answer.status_code == 404 and workorders.members_of(department_id=w.foreign) == []

    client, token = signed_in(app, w.names["member"])
    assert client.get("/console/departments").status_code == 200
    assert client.post("/console/departments", data={"csrf_token": token, "name": "城建"}).status_code == 403
    # Limits are the street's own: another street's team lead neither sees them nor has them.
    client, token = signed_in(app, w.names["other_admin"])
    assert "report / 全部" not in client.get("/console/departments").get_data(as_text=True)


def test_a_department_acknowledges_a_ticket_it_has_nobody_to_answer(app, w):
    ticket_id = open_ticket(db.session.get(Street, w.street), subject="巡查发现井盖缺失").id  # staff-opened, no resident
    workorders.dispatch(ticket_id=ticket_id, staff_id=w.dispatcher, department_id=w.property)
    client, token = signed_in(app, w.names["member"])
    assert 'id="acknowledge"' in client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert client.post(f"/console/tickets/{ticket_id}/acknowledge", data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert workorders.work_order_of(ticket_id=ticket_id).responded_at is not None
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="acknowledge"' not in page and "“物业”已签收" in page
    again = client.post(f"/console/tickets/{ticket_id}/acknowledge", data={"csrf_token": token},
                        headers={"Accept": "application/json"})
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "already_responded")


def test_the_ticket_shows_the_place_and_photo_thumbnails_to_its_street_only(app, w, storage):
    resident_id = ResidentFactory(community__street=db.session.get(Street, w.street)).id
    db.session.commit()
    photo = tickets.upload_photo(resident_id=resident_id, data=image_bytes("JPEG", size=(800, 600)))
    filed = tickets.report(resident_id=resident_id, category="facilities",
                           text="井盖缺失", pole_number="GY0123-045", photo_ids=[photo.id])
    ticket_id, photo_id = filed.ticket_id, photo.id
    thumb = f"/console/tickets/{ticket_id}/photos/{photo_id}/thumb"

    client, _ = signed_in(app, w.names["member"])
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert "一号定位 <strong>GY0123-045</strong>" in page and f'src="{thumb}"' in page
    answer = client.get(thumb)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/jpeg"
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["X-Content-Type-Options"] == "nosniff"
    assert max(Image.open(io.BytesIO(answer.data)).size) == 240

    client, _ = signed_in(app, w.names["other_admin"])  # another street's staff: no such ticket
    assert client.get(thumb).status_code == 404
    assert client.get(f"/console/tickets/{ticket_id}").status_code == 404
    anonymous = request_scoped_client(app)
    g.pop("_login_user", None)
    assert anonymous.get(thumb, headers={"Accept": "application/json"}).status_code == 401
