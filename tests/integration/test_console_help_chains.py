"""Staff edit an elderly resident's help chain in the console: their own street only, CSRF on, errors in Chinese."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import HelpContact
from tests.factories import (
    CommunityFactory,
    HelpContactFactory,
    HelpDeviceFactory,
    ResidentFactory,
    StaffFactory,
    StreetFactory,
)
from tests.integration.test_console_auth import csrf_from, login


@pytest.fixture
def desk(client, session):
    """A staff member signed in, an elderly resident of their street with a button and a two-person chain."""
    street = StreetFactory()
    resident = ResidentFactory(community=CommunityFactory(street=street), is_elderly=True, name="张奶奶")
    HelpDeviceFactory(resident_id=resident.id, device_uid="DEV-ZHANG")
    son = HelpContactFactory(resident_id=resident.id, position=1, name="张儿子", phone="+8613700000001")
    neighbour = HelpContactFactory(resident_id=resident.id, position=2, name="李邻居", phone="+8613700000002",
                                   relation="neighbour")
    staff = StaffFactory(street=street)
    login(client, staff)
    return resident, son, neighbour, csrf_from(client, "/console/queue")


def chain_of(session, resident_id: int) -> list[tuple]:
    session.expire_all()
    return [(c.name, c.phone, c.relation, c.channels, c.ring_seconds, c.wait_seconds) for c in session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident_id, HelpContact.position > 0)
        .order_by(HelpContact.position))]


def form_of(page: str) -> dict:
    """The form as the browser would send it untouched (text inputs, selected options, checked boxes)."""
    data: dict = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        value = (re.search(r'value="([^"]*)"', tag) or [None, ""])[1]
        if 'type="checkbox"' in tag and "checked" not in tag:
            continue
        data.setdefault(name[1], []).append(value)
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        data[name] = [re.search(r'<option value="([^"]+)" selected', body)[1]]
    return data


def test_the_list_shows_the_streets_elderly_with_devices_and_links(client, desk):
    resident, *_ = desk
    other_street = ResidentFactory(is_elderly=True, name="外街老人")
    page = client.get("/console/help/residents").get_data(as_text=True)
    assert "张奶奶" in page and "DEV-ZHANG" in page and "2 位联系人" in page
    assert f"/console/help/residents/{resident.id}" in page
    assert "外街老人" not in page and f"/console/help/residents/{other_street.id}\"" not in page
    assert "/console/help/residents" in client.get("/console/help").get_data(as_text=True)


def test_the_chain_page_shows_the_contacts_in_order(client, desk):
    resident, son, neighbour, _ = desk
    response = client.get(f"/console/help/residents/{resident.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.index("张儿子") < page.index("李邻居") and "+8613700000002" in page and "DEV-ZHANG" in page
    assert 'name="csrf_token"' in page and "<script>" not in page and "style=" not in page


def test_staff_reorder_add_and_remove_contacts_in_one_save(client, session, desk):
    resident, son, neighbour, token = desk
    data = form_of(client.get(f"/console/help/residents/{resident.id}").get_data(as_text=True))
    # The neighbour first, the son removed, and a new staff-group contact (SMS only) in the first blank row.
    data.update({"c0-remove": ["1"], "c1-position": ["1"],
                 "c2-position": ["2"], "c2-name": ["街道值班"], "c2-phone": ["+8613800000099"],
                 "c2-relation": ["staff"], "c2-channels": ["sms"],
                 "c2-ring_seconds": ["20"], "c2-wait_seconds": ["90"]})
    response = client.post(f"/console/help/residents/{resident.id}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert chain_of(session, resident.id) == [
        ("李邻居", "+8613700000002", "neighbour", "voice,sms", 30, 60),
        ("街道值班", "+8613800000099", "staff", "sms", 20, 90),
    ]
    assert session.get(HelpContact, neighbour.id).position == 1  # kept its identity
    assert session.get(HelpContact, son.id) is None  # never used by an alert: deleted, not retired
    assert "联系链已保存" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_swapping_position_numbers_reorders_the_chain(client, session, desk):
    resident, *_, token = desk
    data = form_of(client.get(f"/console/help/residents/{resident.id}").get_data(as_text=True))
    data.update({"c0-position": ["2"], "c1-position": ["1"]})
    assert client.post(f"/console/help/residents/{resident.id}", data=data).status_code == 302
    assert [row[0] for row in chain_of(session, resident.id)] == ["李邻居", "张儿子"]


def test_an_invalid_phone_is_explained_in_chinese_and_nothing_changes(client, session, desk):
    resident, *_, token = desk
    before = chain_of(session, resident.id)
    data = form_of(client.get(f"/console/help/residents/{resident.id}").get_data(as_text=True))
    data.update({"c0-position": ["3"], "c2-name": ["王女儿"], "c2-phone": ["13800000000"]})
    response = client.post(f"/console/help/residents/{resident.id}", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "未保存" in page and "电话须为国际格式" in page
    assert 'value="王女儿"' in page and 'value="13800000000"' in page  # the input is kept for correcting
    assert chain_of(session, resident.id) == before


def test_a_chain_cannot_be_emptied(client, session, desk):
    resident, *_, token = desk
    before = chain_of(session, resident.id)
    data = form_of(client.get(f"/console/help/residents/{resident.id}").get_data(as_text=True))
    data.update({"c0-remove": ["1"], "c1-remove": ["1"]})
    response = client.post(f"/console/help/residents/{resident.id}", data=data)
    assert response.status_code == 422 and "联系链需要 1 到 10 位联系人" in response.get_data(as_text=True)
    assert chain_of(session, resident.id) == before


def test_another_streets_resident_is_not_found(client, session, desk):
    *_, token = desk
    theirs = ResidentFactory(is_elderly=True)
    HelpContactFactory(resident_id=theirs.id, position=1, name="外街家属")
    assert client.get(f"/console/help/residents/{theirs.id}").status_code == 404
    response = client.post(f"/console/help/residents/{theirs.id}", data={
        "csrf_token": token, "rows": "1", "c0-position": "1", "c0-name": "冒充", "c0-phone": "+8613900000000",
        "c0-relation": "family", "c0-channels": "sms"})
    assert response.status_code == 404
    assert [row[0] for row in chain_of(session, theirs.id)] == ["外街家属"]
    assert client.get("/console/help/residents/999999999").status_code == 404


def test_a_save_without_csrf_token_is_refused(client, session, desk):
    resident, *_ = desk
    before = chain_of(session, resident.id)
    data = form_of(client.get(f"/console/help/residents/{resident.id}").get_data(as_text=True))
    data.pop("csrf_token")
    data.update({"c0-remove": ["1"]})
    response = client.post(f"/console/help/residents/{resident.id}", data=data)
    assert response.status_code == 400 and "安全令牌" in response.get_data(as_text=True)
    assert chain_of(session, resident.id) == before


def test_without_a_session_the_pages_redirect_to_login(client, session):
    resident = ResidentFactory(is_elderly=True)
    HelpContactFactory(resident_id=resident.id, position=1)
    for path in ("/console/help/residents", f"/console/help/residents/{resident.id}"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/console/login")
    token = csrf_from(client)
    response = client.post(f"/console/help/residents/{resident.id}", data={"csrf_token": token, "rows": "1",
                                                                         "c0-remove": "1"})
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert len(chain_of(session, resident.id)) == 1
