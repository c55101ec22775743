"""Authorization, tried by an attacker who holds a valid account of their own (issue 24).

- Resident A names resident B's appointments, family members, requests, photos, help chain and delegates by id,
  in the path, the query or the body: every answer is the one an id nobody has gets (404, never 403, so an id is
  never confirmed), and B's rows stay as they were.
- A family member reaches only the resident who added them; a relative B authorised for help reaches B's help
  chain and nothing else of B's.
- Staff of street A see no row of street B on any console page and act on none (404, as for an unknown id).
- Staff get 403 from every team-lead (admin_required) page and action.
- The internal API (`/api/internal`, the deprecated `/api/booking`, the service-token routes of `/api/devices`)
  answers 401 JSON to a missing or wrong service token.

The route lists are read from `app.url_map` and each route must be in a table below: a route added without saying
how it is scoped fails a classification test, and a classified one is swept automatically.
"""
from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.console.access import admin_required
from app.core.extensions import db
from app.models import FaqArticle, HelpAlert, Ticket
from app.services import reports
from app.services.help import OUTCOMES
from app.services.tickets import VIEWS
from tests.factories import FaqArticleFactory
from tests.helpers.authorization import (
    FAMILY_ID_NUMBERS,
    MISSING_ID,
    build_url,
    console_csrf,
    has_id,
    methods,
    resident_headers,
    rows_of,
    sign_in_console,
    two_streets,
)
from tests.reliability.support import SERVICE_TOKEN, request_scoped_client


@pytest.fixture
def world(app, committed, storage):
    return two_streets()


@pytest.fixture
def web(app, world):
    return request_scoped_client(app)


def rules(app, prefix: str):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(prefix)]


def unclassified(app, prefix: str, table: dict) -> tuple[set, set]:
    endpoints = {rule.endpoint for rule in rules(app, prefix)}
    return endpoints - set(table), set(table) - endpoints


# --- residents: /api/v1 ---------------------------------------------------------------------------------------

SIGN_IN, OWN, CATALOGUE, OWNED_ID = "sign-in", "own", "catalogue", "owned id"
MOBILE = {
    # Before there is a resident: nothing of anyone's to reach.
    "mobile_v1.send_code": SIGN_IN, "mobile_v1.sign_in": SIGN_IN, "mobile_v1.wechat_sign_in": SIGN_IN,
    "mobile_v1.wechat_url": SIGN_IN, "mobile_v1.refresh": SIGN_IN,
    # The token's resident only; ids these take in a body or query are tried in
    # test_an_id_in_a_query_body_or_key_reaches_nothing_of_another_resident.
    "mobile_v1.sign_out": OWN, "mobile_v1.sign_out_everywhere": OWN, "mobile_v1.me": OWN, "mobile_v1.edit_me": OWN,
    "mobile_v1.link_phone": OWN, "mobile_v1.confirm_phone": OWN, "mobile_v1.link_wechat": OWN,
    "mobile_v1.list_appointments": OWN, "mobile_v1.book": OWN, "mobile_v1.hold": OWN,
    "mobile_v1.join_waitlist": OWN, "mobile_v1.waitlist": OWN, "mobile_v1.list_family": OWN,
    "mobile_v1.add_member": OWN, "mobile_v1.managed": OWN, "mobile_v1.delegates": OWN,
    "mobile_v1.add_delegate": OWN, "mobile_v1.notifications": OWN, "mobile_v1.upload_photo": OWN,
    "mobile_v1.report": OWN, "mobile_v1.list_requests": OWN,
    # The same for every resident.
    "mobile_v1.departments": CATALOGUE, "mobile_v1.search_slots": CATALOGUE,
    # An id in the path: only the resident's own row (or, for help, of a resident who authorised them).
    "mobile_v1.get_appointment": OWNED_ID, "mobile_v1.cancel": OWNED_ID, "mobile_v1.reschedule": OWNED_ID,
    "mobile_v1.confirm_hold": OWNED_ID, "mobile_v1.release_hold": OWNED_ID, "mobile_v1.accept_offer": OWNED_ID,
    "mobile_v1.leave_waitlist": OWNED_ID,
    "mobile_v1.edit_member": OWNED_ID, "mobile_v1.remove_member": OWNED_ID, "mobile_v1.remove_delegate": OWNED_ID,
    "mobile_v1.alerts": OWNED_ID, "mobile_v1.chain": OWNED_ID, "mobile_v1.replace_chain": OWNED_ID,
    "mobile_v1.photo": OWNED_ID, "mobile_v1.get_request": OWNED_ID, "mobile_v1.rate": OWNED_ID,
    "mobile_v1.answer_followup": OWNED_ID,
}
HELP_CHAIN = {"mobile_v1.alerts", "mobile_v1.chain", "mobile_v1.replace_chain"}


def mobile_ids(side: dict) -> dict:
    return {name: side[name] for name in ("appointment_id", "patient_id", "delegate_id", "resident_id", "photo_id",
                                          "request_id", "hold_id", "entry_id")}


def mobile_body(endpoint: str, me: dict):
    """A body the route would accept, so only ownership can be the reason it is refused."""
    return {
        "mobile_v1.reschedule": {"slot_id": me["spare_slot_id"]},
        "mobile_v1.edit_member": {"name": "冒名顶替"},
        "mobile_v1.replace_chain": {"contacts": [{"name": "冒充", "phone": "+8613900000000", "relation": "family"}]},
        "mobile_v1.rate": {"score": 1, "comment": "冒充差评"},
        "mobile_v1.answer_followup": {"solved": False, "satisfaction": 1},
    }.get(endpoint)


def owned_id_routes(app):
    return [(rule, method) for rule in rules(app, "/api/v1/") if MOBILE.get(rule.endpoint) == OWNED_ID
            for method in methods(rule)]


def test_every_mobile_route_is_classified(app):
    new, gone = unclassified(app, "/api/v1/", MOBILE)
    assert not new, f"routes of /api/v1 nobody said how they are scoped: {sorted(new)}; add them to MOBILE"
    assert not gone, f"MOBILE names routes that no longer exist: {sorted(gone)}"
    for rule in rules(app, "/api/v1/"):
        assert has_id(rule) == (MOBILE[rule.endpoint] == OWNED_ID), \
            f"{rule.rule}: a route with an id in its path is OWNED_ID (and swept), one without is not"


def test_a_resident_reaches_no_other_residents_row_by_an_id_in_the_path(app, web, world):
    me, theirs = world["a"], world["b"]
    headers = resident_headers(me["resident_id"])
    before = rows_of(theirs)
    swept = 0
    for rule, method in owned_id_routes(app):
        body = mobile_body(rule.endpoint, me)
        answer = web.open(build_url(rule, mobile_ids(theirs)), method=method, headers=headers, json=body)
        nobody = web.open(build_url(rule, dict.fromkeys(rule.arguments, MISSING_ID)), method=method,
                          headers=headers, json=body)
        assert answer.status_code == 404, (rule.endpoint, method, answer.status_code, answer.get_data(as_text=True))
        # Word for word what an id nobody has gets: the answer confirms nothing.
        assert (nobody.status_code, nobody.get_json()) == (404, answer.get_json()), (rule.endpoint, method)
        swept += 1
    assert swept >= 16
    assert rows_of(theirs) == before
    # The same reads with the resident's own ids answer: the ids above named real rows, refused for their owner.
    for rule, method in owned_id_routes(app):
        if method == "GET":
            assert web.get(build_url(rule, mobile_ids(me)), headers=headers).status_code == 200, rule.endpoint


def test_an_id_in_a_query_body_or_key_reaches_nothing_of_another_resident(app, web, world):
    me, theirs = world["a"], world["b"]
    headers = resident_headers(me["resident_id"])
    before = rows_of(theirs)

    # Their family member as a filter of my appointments: the answer of an unknown member (none).
    answer = web.get(f"/api/v1/appointments?patient_id={theirs['patient_id']}", headers=headers)
    nobody = web.get(f"/api/v1/appointments?patient_id={MISSING_ID}", headers=headers)
    assert answer.status_code == 200 and answer.get_json() == nobody.get_json() == {"appointments": [],
                                                                                  "next_cursor": None}
    # Booking, holding a seat or joining a waitlist for their family member.
    for path, body in (("/api/v1/appointments", {"slot_id": me["spare_slot_id"]}),
                       ("/api/v1/holds", {"slot_id": me["spare_slot_id"]}),
                       ("/api/v1/waitlist", {"department_id": me["full_department_id"],
                                             "date": me["visit_day"].isoformat()})):
        tried = [web.post(path, headers=headers, json={**body, "patient_id": patient_id})
                 for patient_id in (theirs["patient_id"], MISSING_ID)]
        assert [r.status_code for r in tried] == [404, 404], (path, tried[0].get_data(as_text=True))
        assert tried[0].get_json() == tried[1].get_json(), path
    # Their photo, still waiting for a request, attached to mine.
    report = [web.post("/api/v1/requests", headers=headers,
                       json={"category": "other", "text": "路灯", "pole_number": "A-0001", "photo_ids": [photo_id]})
              for photo_id in (theirs["loose_photo_id"], MISSING_ID)]
    assert [r.status_code for r in report] == [404, 404] and report[0].get_json() == report[1].get_json()
    # Their help contact's id put into my chain (to take it over with its history).
    chain = [web.put(f"/api/v1/help/residents/{me['resident_id']}/contacts", headers=headers,
                     json={"contacts": [{"id": contact_id, "name": "冒充", "phone": "+8613900000000",
                                         "relation": "family"}]})
             for contact_id in (theirs["contact_id"], MISSING_ID)]
    assert [r.status_code for r in chain] == [422, 422]
    assert chain[0].get_json()["error"]["code"] == chain[1].get_json()["error"]["code"] == "unknown_contact"
    # An Idempotency-Key they used replays nothing of theirs to me.
    key = uuid.uuid4().hex
    body = {"address": "幸福路2号"}
    first = web.patch("/api/v1/me", headers={**resident_headers(theirs["resident_id"]), "Idempotency-Key": key},
                      json=body)
    assert first.status_code == 200 and theirs["mark"] in first.get_data(as_text=True)
    mine = web.patch("/api/v1/me", headers={**headers, "Idempotency-Key": key}, json=body)
    assert mine.status_code == 200 and "Idempotent-Replayed" not in mine.headers
    assert mine.get_json()["id"] == me["resident_id"] and theirs["mark"] not in mine.get_data(as_text=True)
    assert rows_of(theirs) == before


def test_every_list_shows_a_resident_only_their_own_rows(app, web, world):
    """Notifications, appointments, family, requests, delegates, whose help they manage: no id is asked, and
    nothing of another resident comes back."""
    me, theirs = world["a"], world["b"]
    headers = resident_headers(me["resident_id"])
    query = {"mobile_v1.search_slots": f"?department={me['full_department_id']}&date_from={me['visit_day']}"}
    answers = {}
    for rule in rules(app, "/api/v1/"):
        if MOBILE[rule.endpoint] in (OWN, CATALOGUE) and "GET" in rule.methods:
            response = web.get(rule.rule + query.get(rule.endpoint, ""), headers=headers)
            assert response.status_code == 200, (rule.endpoint, response.get_data(as_text=True)[:300])
            answers[rule.endpoint] = response.get_data(as_text=True)
            assert theirs["mark"] not in answers[rule.endpoint], rule.endpoint
    assert {"mobile_v1.notifications", "mobile_v1.list_family", "mobile_v1.list_requests",
            "mobile_v1.list_appointments", "mobile_v1.delegates", "mobile_v1.managed", "mobile_v1.me"} <= set(answers)
    # Each list holds the resident's own rows: the absence above is not an empty answer.
    for endpoint in ("mobile_v1.notifications", "mobile_v1.list_family", "mobile_v1.list_requests",
                     "mobile_v1.delegates", "mobile_v1.managed", "mobile_v1.me"):
        assert me["mark"] in answers[endpoint], endpoint
    assert str(me["appointment_id"]) in answers["mobile_v1.list_appointments"]


def test_a_family_member_reaches_only_the_resident_who_added_them(app, web, world):
    me, theirs = world["a"], world["b"]
    headers = resident_headers(me["resident_id"])
    before = rows_of(theirs)
    # The same person (their ID number) registered by me is a record of mine: nothing of theirs comes with it.
    added = web.post("/api/v1/family", headers=headers,
                     json={"name": "我家老人", "id_number": FAMILY_ID_NUMBERS["b"], "relation": "parent"})
    assert added.status_code == 201, added.get_data(as_text=True)
    patient = added.get_json()["patient"]
    assert patient["id"] != theirs["patient_id"] and patient["name"] == "我家老人" and patient["phone"] is None
    family = web.get("/api/v1/family", headers=headers).get_data(as_text=True)
    assert theirs["mark"] not in family and theirs["family_phone"] not in family
    # Theirs stays theirs, and is still listed for them only.
    assert rows_of(theirs) == before
    their_family = web.get("/api/v1/family", headers=resident_headers(theirs["resident_id"])).get_json()["patients"]
    assert {p["id"] for p in their_family} == {theirs["patient_id"], theirs["own_patient_id"]}


def test_a_relative_authorised_for_help_reaches_the_help_chain_and_nothing_else(app, web, world):
    me, theirs = world["a"], world["b"]
    # They authorise my phone: I may now manage their help chain (the point of authorising)...
    granted = web.post("/api/v1/help/delegates", headers=resident_headers(theirs["resident_id"]),
                       json={"phone": me["phone"], "name": "子女"})
    assert granted.status_code == 201, granted.get_data(as_text=True)
    headers = resident_headers(me["resident_id"])
    assert web.get(f"/api/v1/help/residents/{theirs['resident_id']}/contacts", headers=headers).status_code == 200
    before = rows_of(theirs)
    # ...and still nothing else of theirs: appointments, family members, requests, photos, delegates.
    swept = 0
    for rule, method in owned_id_routes(app):
        if rule.endpoint in HELP_CHAIN:
            continue
        answer = web.open(build_url(rule, mobile_ids(theirs)), method=method, headers=headers,
                          json=mobile_body(rule.endpoint, me))
        assert answer.status_code == 404, (rule.endpoint, method, answer.status_code)
        swept += 1
    assert swept >= 13
    for path in ("/api/v1/appointments", "/api/v1/family", "/api/v1/requests", "/api/v1/notifications"):
        assert theirs["mark"] not in web.get(path, headers=headers).get_data(as_text=True), path
    assert rows_of(theirs) == before


# --- staff: /console ------------------------------------------------------------------------------------------

PUBLIC, SELF, SHARED, STREET, ROW = "public", "self", "shared", "street", "row"
CONSOLE = {
    "console.login": PUBLIC,
    # The signed-in member's own session and duty switch.
    "console.logout": SELF, "console.toggle_duty": SELF, "console.home": SELF,
    # One FAQ for every street (team leads edit it: tests/security/test_faq_editing.py), and a script.
    "console.knowledge_page": SHARED, "console.knowledge_update": SHARED, "console.help_board_script": SHARED,
    # Lists and reports of the member's street.
    "console.queue_page": STREET, "console.queue_rows": STREET, "console.queue_counts": STREET,
    "console.help_board_page": STREET, "console.help_board_rows": STREET, "console.help_board_json": STREET,
    "console.help_residents_page": STREET, "console.appointments_page": STREET, "console.team_page": STREET,
    "console.reports_page": STREET, "console.report_json": STREET, "console.report_csv": STREET,
    "console.simulator_page": STREET, "console.simulator_feed": STREET, "console.simulator_send": STREET,
    # One row by its id: tickets (residents' requests and help alerts each have one), alerts, help chains,
    # appointments, colleagues.
    "console.ticket_page": ROW, "console.ticket_timeline": ROW, "console.ticket_photo": ROW,
    "console.ticket_reply": ROW, "console.ticket_note": ROW, "console.ticket_claim": ROW, "console.ticket_assign": ROW,
    "console.ticket_status": ROW, "console.ticket_priority": ROW, "console.ticket_category": ROW,
    "console.help_accept": ROW, "console.help_note": ROW, "console.help_call_again": ROW,
    "console.help_resolve": ROW, "console.help_chain_page": ROW, "console.help_chain_save": ROW,
    "console.appointment_attended": ROW, "console.appointment_noshow": ROW, "console.team_duty": ROW,
    # Work orders (issue 21): the street's departments and queues; a department named in a form is looked up in
    # the member's street only (tests/integration/test_workorders.py); the ticket's steps are rows.
    "console.workorders_page": STREET, "console.departments_page": STREET, "console.department_create": STREET,
    "console.department_member_add": STREET, "console.department_limit_set": STREET,
    "console.ticket_dispatch": ROW, "console.ticket_transfer": ROW, "console.ticket_return": ROW,
    "console.ticket_oversee": ROW, "console.ticket_respond": ROW, "console.ticket_acknowledge": ROW,
    "console.ticket_complete": ROW,
    "console.ticket_photo_thumb": ROW,
}
ADMIN_ONLY = {"console.team_page", "console.team_duty", "console.reports_page", "console.report_json",
              "console.report_csv", "console.knowledge_update", "console.department_create",
              "console.department_member_add", "console.department_limit_set"}
_ADMIN_WRAPPER = admin_required(lambda: None).__code__


def is_admin_only(view) -> bool:
    """Whether admin_required wraps the view, found by its code at any depth of decorators."""
    while view is not None:
        if getattr(view, "__code__", None) is _ADMIN_WRAPPER:
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def console_ids(side: dict, ticket: str = "ticket_id") -> dict:
    return {"ticket_id": side[ticket], "alert_id": side["alert_id"], "resident_id": side["resident_id"],
            "appointment_id": side["today_appointment_id"], "staff_id": side["staff_id"], "photo_id": side["photo_id"]}


def console_form(me: dict, token: str) -> dict:
    """Valid values for every console form, so only the street can be the reason for a refusal."""
    return {"csrf_token": token, "body": "越权回复", "status": "resolved", "priority": "urgent",
            "category": "other", "assignee_id": str(me["staff_id"]), "reason": "x", "outcome": next(iter(OUTCOMES)),
            "note": "x", "on_duty": "0", "date": me["day"].isoformat(), "rows": "1", "c0-name": "冒充",
            "c0-phone": "+8613900000000", "c0-relation": "family", "c0-channels": "voice", "c0-position": "1"}


def page_urls(rule, me: dict) -> list[str]:
    """The GET URLs of a street page (or a row of the own street) worth reading, with their useful queries."""
    day = me["day"].isoformat()
    period = f"start={me['today'] - timedelta(days=2)}&end={me['today'] + timedelta(days=1)}"
    if rule.endpoint in ("console.queue_page", "console.queue_rows"):
        return [f"{rule.rule}?view={view}" for view in VIEWS]
    if rule.endpoint == "console.appointments_page":
        return [rule.rule, f"{rule.rule}?date={day}"]
    if rule.endpoint in ("console.report_json", "console.report_csv"):
        return [build_url(rule, {"name": name}) + f"?{period}" for name in reports.TITLES]
    if rule.endpoint == "console.simulator_feed":
        return [f"{rule.rule}?openid={me['openid']}"]
    if rule.endpoint in ("console.ticket_photo", "console.ticket_photo_thumb"):
        return [build_url(rule, console_ids(me, "request_ticket_id"))]
    if rule.endpoint in ("console.ticket_page", "console.ticket_timeline"):
        return [build_url(rule, console_ids(me, t)) for t in ("ticket_id", "alert_ticket_id", "request_ticket_id")]
    return [build_url(rule, console_ids(me))]


def test_every_console_route_is_classified(app):
    new, gone = unclassified(app, "/console/", CONSOLE)
    assert not new, f"console routes nobody said how they are scoped: {sorted(new)}; add them to CONSOLE"
    assert not gone, f"CONSOLE names routes that no longer exist: {sorted(gone)}"
    for rule in rules(app, "/console/"):
        assert has_id(rule) == (CONSOLE[rule.endpoint] == ROW), \
            f"{rule.rule}: a console route with an id in its path is ROW (and swept), one without is not"
    admin = {rule.endpoint for rule in rules(app, "/console/") if is_admin_only(app.view_functions[rule.endpoint])}
    assert admin == ADMIN_ONLY, f"admin_required is on {sorted(admin)}; ADMIN_ONLY says {sorted(ADMIN_ONLY)}"


def test_no_console_page_shows_another_streets_rows(app, web, world, monkeypatch):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    me, theirs = world["a"], world["b"]
    read = 0
    for who in ("staff", "admin"):
        sign_in_console(web, me[who])
        pages = {}
        for rule in rules(app, "/console/"):
            if CONSOLE[rule.endpoint] not in (STREET, ROW) or "GET" not in rule.methods:
                continue
            if who == "staff" and rule.endpoint in ADMIN_ONLY:
                continue
            for url in page_urls(rule, me):
                response = web.get(url)
                text = response.get_data().decode(errors="replace")  # a photo too
                assert response.status_code == 200, (who, url, response.status_code, text[:300])
                assert theirs["mark"] not in text, f"{who} of street A sees street B's rows on {url}"
                pages[url] = text
                read += 1
        # The pages do show the own street's rows: B's absence is not an empty page.
        assert "工单" + me["mark"] in pages["/console/queue?view=open"]
        assert "居民" + me["mark"] in pages["/console/help"]
        assert "居民" + me["mark"] in pages["/console/help/residents"]
        assert "家属" + me["mark"] in pages[f"/console/appointments?date={me['day'].isoformat()}"]
        assert me["openid"] in pages["/console/simulator"]
        web.post("/console/logout", data={"csrf_token": console_csrf(web)})
    assert read >= 40


def test_reports_count_the_own_street_only(app, web, world):
    me, theirs = world["a"], world["b"]
    sign_in_console(web, me["admin"])
    period = f"start={me['today'] - timedelta(days=2)}&end={me['today'] + timedelta(days=1)}"
    volume = web.get(f"/console/api/reports/volume?{period}").get_json()
    db.session.expire_all()
    own_tickets = db.session.scalar(select(func.count(Ticket.id)).where(Ticket.street_id == me["street_id"]))
    assert volume["totals"]["tickets"] == own_tickets == 3  # not the 6 of both streets
    assert volume["totals"]["help_alerts"] == 1
    assert db.session.scalar(select(func.count(HelpAlert.id))) == 2
    # Their community as the filter: what an unknown community gets.
    for path in ("/console/api/reports/volume", "/console/reports/volume.csv", "/console/reports"):
        answers = [web.get(f"{path}?community={community}") for community in (theirs["community_id"], MISSING_ID)]
        assert [a.status_code for a in answers] == [404, 404], path
        assert answers[0].get_data() == answers[1].get_data(), path


def test_console_actions_on_another_streets_ids_are_not_found_and_change_nothing(app, web, world, monkeypatch):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    me, theirs = world["a"], world["b"]
    before = rows_of(theirs)
    swept = 0
    for who in ("staff", "admin"):
        sign_in_console(web, me[who])
        form = console_form(me, console_csrf(web))
        for rule in rules(app, "/console/"):
            if CONSOLE[rule.endpoint] != ROW or (who == "staff" and rule.endpoint in ADMIN_ONLY):
                continue  # staff are refused those by role first (test_staff_reach_no_admin_page_or_action)
            tickets = ("ticket_id", "alert_ticket_id", "request_ticket_id") if "ticket_id" in rule.arguments \
                else ("ticket_id",)
            for method in methods(rule):
                for ticket in tickets:
                    answer = web.open(build_url(rule, console_ids(theirs, ticket)), method=method, data=form)
                    nobody = web.open(build_url(rule, dict.fromkeys(rule.arguments, MISSING_ID)), method=method,
                                      data=form)
                    assert answer.status_code == 404, (who, rule.endpoint, ticket, answer.status_code,
                                                       answer.headers.get("Location"))
                    assert (nobody.status_code, nobody.get_data()) == (404, answer.get_data()), (who, rule.endpoint)
                    swept += 1
        # The simulator (development only) names a resident by openid: it will not play theirs, nor show their feed.
        assert web.post("/console/simulator/send", json={"openid": theirs["openid"], "text": "冒充居民"},
                        headers={"X-CSRFToken": form["csrf_token"]}).status_code == 404
        assert web.get(f"/console/simulator/feed?openid={theirs['openid']}").status_code == 404
        web.post("/console/logout", data={"csrf_token": form["csrf_token"]})
    assert swept >= 2 * 17
    assert rows_of(theirs) == before


def test_staff_reach_no_admin_page_or_action(app, web, world):
    me = world["a"]
    article = FaqArticleFactory(topic="authz_hours", title="开门时间", answer="8:00-17:00")
    db.session.commit()
    values = {"staff_id": me["admin_id"], "name": "volume", "topic": article.topic}
    admin_routes = [(rule, method) for rule in rules(app, "/console/") if rule.endpoint in ADMIN_ONLY
                    for method in methods(rule)]
    sign_in_console(web, me["staff"])
    form = {"csrf_token": console_csrf(web), "on_duty": "0", "title": "开门时间", "answer": "请拨打假冒电话"}
    before = rows_of(me)
    for rule, method in admin_routes:
        answer = web.open(build_url(rule, values), method=method, data=form)
        assert answer.status_code == 403, (rule.endpoint, method, answer.status_code)
    assert rows_of(me) == before
    db.session.expire_all()
    assert db.session.get(FaqArticle, article.id).answer == "8:00-17:00"
    # A team lead passes the same doors: the refusal above is the role's.
    web.post("/console/logout", data={"csrf_token": form["csrf_token"]})
    sign_in_console(web, me["admin"])
    form["csrf_token"] = console_csrf(web)
    for rule, method in admin_routes:
        answer = web.open(build_url(rule, values), method=method, data=form)
        assert answer.status_code in (200, 302), (rule.endpoint, method, answer.status_code)


# --- services: /api/internal, /api/booking (deprecated), /api/devices -----------------------------------------

# Blueprints whose every route takes the bot's service token, but for the device-signed press (an HMAC per device:
# tests/reliability/test_authorization_sweep.py).
SERVICE_BLUEPRINTS = {"internal", "booking", "devices"}
DEVICE_SIGNED = {"devices.press", "devices.heartbeat", "devices.device_checkin"}


def service_routes(app):
    return [(rule, method) for rule in rules(app, "/api/")
            if not rule.rule.startswith("/api/v1/") and rule.endpoint not in DEVICE_SIGNED
            for method in methods(rule)]


def test_every_service_route_is_classified(app):
    others = {rule.endpoint for rule in rules(app, "/api/") if not rule.rule.startswith("/api/v1/")}
    unknown = {e for e in others if e not in DEVICE_SIGNED and e.split(".")[0] not in SERVICE_BLUEPRINTS}
    assert not unknown, f"/api routes outside /api/v1 nobody said how they are guarded: {sorted(unknown)}"
    prefixes = {rule.rule.split("/")[2] for rule, _ in service_routes(app)}
    assert {"internal", "booking", "devices", "residents"} <= prefixes


def test_the_internal_api_refuses_a_missing_or_wrong_service_token(app, web, world, monkeypatch):
    me = world["a"]
    values = {"resident_id": me["resident_id"], "appointment_id": me["appointment_id"],
              "patient_id": me["patient_id"], "hold_id": me["hold_id"], "entry_id": me["entry_id"],
              "topic": "authz", "device_uid": "DEV-AUTHZ"}
    # What each would act on with a good token: a booking, a help alert, a hand-over, a chain.
    body = {"sender": "x", "slot_id": me["spare_slot_id"], "patient_id": me["patient_id"],
            "resident_id": me["resident_id"], "device_uid": "DEV-AUTHZ", "text": "x",
            "contacts": [{"name": "冒充", "phone": "+8613900000000", "relation": "family"}]}
    wrong = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer "}, {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {SERVICE_TOKEN}x"}, {"Authorization": f"Bearer {SERVICE_TOKEN[:-1]}"},
        {"Authorization": f"Bearer {SERVICE_TOKEN.upper()}"},
        {"Authorization": "Basic " + base64.b64encode(f"bot:{SERVICE_TOKEN}".encode()).decode()},
        {"Authorization": SERVICE_TOKEN}, {"Authorization": f"bearer{SERVICE_TOKEN}"},  # no scheme / no space
        resident_headers(me["resident_id"]),  # a resident's token is not the bot's
    ]
    before = rows_of(me)
    refused = 0
    for rule, method in service_routes(app):
        url = build_url(rule, values)
        for headers in wrong:
            answer = web.open(url, method=method, headers=headers, json=body)
            assert answer.status_code == 401, (rule.endpoint, method, headers, answer.status_code)
            assert answer.mimetype == "application/json"
            error = answer.get_json()
            assert set(error) == {"error"} and error["error"]["code"] == "invalid_service_token", error
            refused += 1
    assert refused >= len(wrong) * 20
    assert rows_of(me) == before
    # The right token opens each of them (so the 401s above are the token's); some act on the world's rows now.
    for rule, method in service_routes(app):
        answer = web.open(build_url(rule, values), method=method, json={},
                          headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
        assert answer.status_code != 401, (rule.endpoint, method)
    # An unset token opens nothing either, not even to an empty one.
    monkeypatch.setitem(app.config, "BOT_SERVICE_TOKEN", "")
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        assert web.get("/api/internal/departments", headers=headers).status_code == 401
