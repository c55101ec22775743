"""How much one request may ask for or carry, and what happens to unusual text (issue 24).

Pages: every list of /api/v1 refuses a `limit` over MAX_LIMIT with a 422, and the pagers clamp whatever a caller
passes; the console's queue has no size parameter and never lists more than its cap. Text: each field a resident
or a member of staff writes is either refused with a 4xx (too long: 422 by its schema, 413 over the 1 MB body
limit; NUL, which PostgreSQL cannot store: 422 `invalid_value`, nothing stored) or stored and returned exactly as
sent: right-to-left override, 4-byte characters (emoji, CJK extension B), combining marks, ZWJ sequences. Inbound
WeChat messages cannot carry NUL at all (XML 1.0 has no such character: 400), SMS drop it by design and keep the
rest (app/channels/sms.py). Surrounding white space is trimmed by design, so the samples have none at their ends.
"""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import insert, select

from app.core.extensions import db
from app.core.pagination import MAX_LIMIT, page_list, page_query
from app.models import (
    HelpContact,
    Message,
    OutboundMessage,
    Patient,
    Resident,
    ResidentRequest,
    Street,
    Ticket,
    TicketEvent,
)
from app.seed import demo_id_number
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory, StaffFactory, StreetFactory
from tests.helpers.mobile import bearer, error_code, idem, sign_in
from tests.helpers.wechat import message_xml, post_plain, text_xml
from tests.integration.test_console_auth import csrf_from, login

# RTL override (and its pop), CJK, an emoji and a CJK extension B character (4 bytes in UTF-8), a decomposed é and
# two lone combining marks, a family emoji joined by ZWJ, a flag (two regional indicators).
UNUSUAL = "\u202egnp.exe\u202c 老王😀𠀀 e\u0301 \u0301\u0302 👨\u200d👩\u200d👧 🇨🇳 居委会"
LONG = "长" * 10_000
ONE_MEGABYTE = "x" * (1024 * 1024)
NUL = "老王\x00张三"


def test_the_sample_is_what_it_claims():
    assert len(UNUSUAL) <= 50  # fits the shortest of the fields below (a family member's name)
    assert {"\u202e", "😀", "𠀀", "\u0301", "\u200d"} <= set(UNUSUAL) and UNUSUAL == UNUSUAL.strip()
    assert len("𠀀".encode()) == 4 and len("😀".encode()) == 4


# --- page sizes -----------------------------------------------------------------------------------------------------

@pytest.fixture
def resident(client, app, session):
    StreetFactory()
    return sign_in(client, app, "13800002401")


def _lists(tokens) -> list[str]:
    return ["/api/v1/requests", "/api/v1/notifications", "/api/v1/appointments",
            f"/api/v1/help/residents/{tokens['resident_id']}/alerts"]


@pytest.mark.parametrize("limit", [100_000, MAX_LIMIT + 1, 2**63, 0, -1])
def test_every_api_list_refuses_a_page_over_max_limit(client, resident, limit):
    for path in _lists(resident):
        response = client.get(path, query_string={"limit": limit}, headers=bearer(resident))
        assert error_code(response, 422) == "validation_error", path
        assert "limit" in response.get_json()["error"]["details"]["query"], path


def test_every_api_list_serves_a_page_of_max_limit(client, resident):
    for path in _lists(resident):
        response = client.get(path, query_string={"limit": MAX_LIMIT}, headers=bearer(resident))
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])


def test_the_slot_search_refuses_a_huge_limit(client, resident):
    response = client.get("/api/v1/slots", query_string={"department": "1", "date_from": "2024-05-01",
                                                         "limit": 100_000}, headers=bearer(resident))
    assert error_code(response, 422) == "validation_error"


def test_the_pagers_never_return_more_than_max_limit(app, session):
    """Whatever limit a route passes on (a schema forgotten, a new list), one page holds MAX_LIMIT rows at most."""
    session.execute(insert(Street), [{"code": f"h24-{n}", "name": f"街道{n}"} for n in range(MAX_LIMIT + 5)])
    page = page_query(select(Street), scope="streets", columns=(Street.id,), descending=False, cursor=None,
                      limit=100_000)
    assert len(page.items) == MAX_LIMIT and page.next_cursor
    listed = page_list(list(range(MAX_LIMIT + 5)), scope="numbers", key=lambda n: (n,), cursor=None, limit=100_000)
    assert len(listed.items) == MAX_LIMIT and listed.next_cursor


QUEUE_CAP = 200  # tickets.queue's own limit; the console has no page-size parameter


def test_the_console_queue_ignores_a_limit_and_lists_at_most_its_cap(client, session):
    street = StreetFactory()
    session.execute(insert(Ticket), [{"street_id": street.id, "source": "bot", "subject": f"工单{n}"}
                                     for n in range(QUEUE_CAP + 5)])
    assert login(client, StaffFactory(street=street)).status_code == 302
    for path in ("/console/queue/rows", "/console/queue"):
        page = client.get(path, query_string={"view": "open", "limit": 100_000, "per_page": 100_000})
        assert page.status_code == 200
        assert len(re.findall(r'data-ticket-id="\d+"', page.get_data(as_text=True))) == QUEUE_CAP, path


# --- /api/v1: profile, family members, requests ---------------------------------------------------------------------

def _me(client, tokens) -> dict:
    return client.get("/api/v1/me", headers=bearer(tokens)).get_json()


@pytest.mark.parametrize("field", ["name", "address"])
def test_the_profile_keeps_unusual_text_exactly(client, resident, session, field):
    response = client.patch("/api/v1/me", json={field: UNUSUAL}, headers=idem(resident))
    assert response.status_code == 200 and response.get_json()[field] == UNUSUAL
    assert _me(client, resident)[field].encode() == UNUSUAL.encode()
    session.expire_all()
    assert getattr(session.get(Resident, resident["resident_id"]), field) == UNUSUAL


@pytest.mark.parametrize("field", ["name", "address"])
@pytest.mark.parametrize("value, status, code", [
    (LONG, 422, "validation_error"), (ONE_MEGABYTE, 413, "request_entity_too_large"), (NUL, 422, "invalid_value")],
    ids=["10000_characters", "1_megabyte", "nul"])
def test_the_profile_refuses_text_it_cannot_keep_and_keeps_the_old(client, resident, field, value, status, code):
    before = _me(client, resident)[field]
    response = client.patch("/api/v1/me", data=json.dumps({field: value}), content_type="application/json",
                            headers=idem(resident))
    assert error_code(response, status) == code
    assert _me(client, resident)[field] == before


def _add_member(client, tokens, name: str, serial: str = "241"):
    return client.post("/api/v1/family", data=json.dumps({"name": name, "id_number": demo_id_number("19600101", serial),
                                                          "relation": "parent"}),
                       content_type="application/json", headers=idem(tokens))


def test_a_family_member_keeps_an_unusual_name_exactly(client, resident, session):
    response = _add_member(client, resident, UNUSUAL)
    assert response.status_code == 201, response.get_data(as_text=True)
    member = response.get_json()["patient"]
    assert member["name"] == UNUSUAL
    listed = client.get("/api/v1/family", headers=bearer(resident)).get_json()["patients"]
    assert [p["name"] for p in listed if p["id"] == member["id"]] == [UNUSUAL]
    assert session.get(Patient, member["id"]).name == UNUSUAL


@pytest.mark.parametrize("value, status, code", [
    (LONG, 422, "validation_error"), (ONE_MEGABYTE, 413, "request_entity_too_large"), (NUL, 422, "invalid_value")],
    ids=["10000_characters", "1_megabyte", "nul"])
def test_a_family_member_name_that_cannot_be_kept_is_refused(client, resident, session, value, status, code):
    assert error_code(_add_member(client, resident, value), status) == code
    assert client.get("/api/v1/family", headers=bearer(resident)).get_json()["patients"] == []


def _report(client, tokens, text: str):
    body = {"category": "other", "text": text, "pole_number": "GY0123-045"}
    return client.post("/api/v1/requests", data=json.dumps(body),
                       content_type="application/json", headers=idem(tokens))


def test_a_request_keeps_an_unusual_description_exactly(client, resident, session):
    response = _report(client, resident, UNUSUAL)
    assert response.status_code == 201, response.get_data(as_text=True)
    filed = response.get_json()["request"]
    assert filed["text"] == UNUSUAL
    again = client.get(f"/api/v1/requests/{filed['id']}", headers=bearer(resident)).get_json()["request"]
    assert again["text"].encode() == UNUSUAL.encode()
    assert session.get(ResidentRequest, filed["id"]).text == UNUSUAL


@pytest.mark.parametrize("value, status, code", [
    (LONG, 422, "validation_error"), (ONE_MEGABYTE, 413, "request_entity_too_large"), (NUL, 422, "invalid_value")],
    ids=["10000_characters", "1_megabyte", "nul"])
def test_a_request_description_that_cannot_be_kept_is_refused_and_opens_no_ticket(client, resident, session, value,
                                                                                   status, code):
    assert error_code(_report(client, resident, value), status) == code
    assert client.get("/api/v1/requests", headers=bearer(resident)).get_json()["requests"] == []
    assert session.scalar(select(Ticket.id)) is None


# White space alone passed `Length(1, ...)` and the services stripped it: a name or a description stored empty.
BLANK = " \t\u3000 "  # an ideographic space among them, as a Chinese keyboard types it


def test_blank_names_and_descriptions_are_refused_and_nothing_is_stored(client, resident, session):
    name_before = _me(client, resident)["name"]
    assert error_code(client.patch("/api/v1/me", json={"name": BLANK}, headers=idem(resident)), 422) \
        == "validation_error"
    assert _me(client, resident)["name"] == name_before
    assert error_code(_add_member(client, resident, BLANK), 422) == "validation_error"
    assert error_code(_report(client, resident, BLANK), 422) == "validation_error"
    chain = {"contacts": [{"name": BLANK, "phone": "+8613800138000", "relation": "family"}]}
    assert error_code(client.put(f"/api/v1/help/residents/{resident['resident_id']}/contacts", json=chain,
                                 headers=idem(resident)), 422) == "validation_error"
    assert session.scalar(select(Patient.id)) is None and session.scalar(select(Ticket.id)) is None
    assert session.scalar(select(HelpContact.id)) is None


def test_surrounding_white_space_is_trimmed_before_storing(client, resident, session):
    response = _add_member(client, resident, f"{BLANK}老王{BLANK}")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["patient"]["name"] == "老王"


# --- the WeChat and SMS webhooks (real commits: the webhook runs in its own sessions) --------------------------------

OPENID = "oH24UnusualText0001"


def _stored_inbound(channel: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.channel == channel, Message.direction == "in")
                                   .order_by(Message.id)))


@pytest.mark.parametrize("content", [UNUSUAL, LONG], ids=["unusual", "10000_characters"])
def test_a_wechat_text_is_stored_exactly_as_sent(web, rasa, street, content):
    response = post_plain(web, text_xml(OPENID, content, 240001))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert _stored_inbound("wechat") == [content]
    assert rasa.turns[0][1] == content  # and the bot read the same text


def test_a_wechat_text_with_nul_is_refused_as_malformed_and_nothing_is_stored(web, rasa, street):
    # XML 1.0 has no NUL, neither raw nor as &#0;: WeChat cannot send one, so such a body is not from WeChat.
    for xml in (text_xml(OPENID, NUL, 240002), message_xml(OPENID, "text", 240002, "<Content>老王&#0;张三</Content>")):
        response = post_plain(web, xml)
        assert response.status_code == 400
    assert _stored_inbound("wechat") == [] and rasa.turns == []


def test_a_wechat_body_over_its_cap_is_refused(web, rasa, street):
    response = post_plain(web, text_xml(OPENID, ONE_MEGABYTE, 240003))
    assert response.status_code == 413
    assert _stored_inbound("wechat") == []


TWILIO_TOKEN = "h24-twilio-auth-token"


def _sms(web, app, monkeypatch, sid: str, body: str):
    from twilio.request_validator import RequestValidator

    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    form = {"MessageSid": sid, "From": "+8613912342401", "To": "+15005550006", "Body": body}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(app.config["PUBLIC_BASE_URL"] + "/sms", form)
    return web.post("/sms", data=form, headers={"X-Twilio-Signature": signature})


def test_an_sms_keeps_unusual_text_exactly_and_drops_only_nul(web, app, rasa, street, monkeypatch):
    assert _sms(web, app, monkeypatch, "SMh24a", UNUSUAL).status_code == 200
    assert _sms(web, app, monkeypatch, "SMh24b", NUL).status_code == 200
    assert _stored_inbound("sms") == [UNUSUAL, NUL.replace("\x00", "")]


# --- the console: a staff reply ---------------------------------------------------------------------------------------

@pytest.fixture
def desk(client, session):
    conversation = ConversationFactory()
    street = conversation.resident.community.street
    ticket = tickets.open_ticket(street_id=street.id, source="bot", subject="楼道灯坏了",
                                 conversation_id=conversation.id, resident_id=conversation.resident_id)
    assert login(client, StaffFactory(street=street)).status_code == 302
    return ticket, csrf_from(client, f"/console/tickets/{ticket.id}")


def _replies(session, ticket) -> tuple[list[str], list[str]]:
    session.expire_all()
    sent = session.scalars(select(OutboundMessage.body).where(OutboundMessage.ticket_id == ticket.id)).all()
    events = session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == ticket.id,
                                                            TicketEvent.kind == "reply_out")).all()
    return list(sent), list(events)


@pytest.mark.parametrize("body", [UNUSUAL, LONG], ids=["unusual", "10000_characters"])
def test_a_staff_reply_is_stored_and_shown_exactly_as_typed(client, session, desk, body):
    ticket, token = desk
    response = client.post(f"/console/tickets/{ticket.id}/reply", data={"csrf_token": token, "body": body})
    assert response.status_code == 302
    assert _replies(session, ticket) == ([body], [body])
    assert body in client.get(f"/console/tickets/{ticket.id}/timeline").get_data(as_text=True)


@pytest.mark.parametrize("body, status", [(NUL, 422), (ONE_MEGABYTE, 413)], ids=["nul", "1_megabyte"])
def test_a_staff_reply_that_cannot_be_kept_is_refused_and_nothing_is_sent(client, session, desk, body, status):
    ticket, token = desk
    response = client.post(f"/console/tickets/{ticket.id}/reply", data={"csrf_token": token, "body": body})
    assert response.status_code == status
    assert _replies(session, ticket) == ([], [])
