"""Authorization sweep over `app.url_map`: every route, every method, tried without credentials, with the wrong
credentials, with the wrong role, and with another street's (or another resident's) ids. None may succeed.

Routes are classified by blueprint with explicit exceptions, so a new route of a known blueprint is swept
automatically under its blueprint's rule, and a route of a new blueprint fails
`test_every_route_is_classified` until someone says how it is guarded.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.console.access import admin_required
from app.core.extensions import db
from app.models import Checkin, DeviceHealth, HelpAlert, Ticket, TicketEvent
from app.services.booking import appointments as booking
from app.services.help.texts import OUTCOMES
from app.services.residents import auth as resident_auth
from tests.helpers.authorization import build_url, resident_headers, sign_in_console, two_streets
from tests.reliability.support import AUTH, request_scoped_client

# How each blueprint is guarded. Endpoints not under a rule here, nor in PUBLIC, fail the classification test.
GUARDS = {
    "internal": "service_token",
    "booking": "service_token",
    "devices": "service_token",
    "console": "staff_session",
    "mobile_v1": "resident_token",
    "sms": "twilio_signature",
    "voice": "twilio_signature",
    "aliyun": "aliyun_push_token",  # Aliyun signs no push: a token in the URL, signed OutIds (docs/help.md)
    "wechat": "wechat_signature",
}
EXCEPTIONS = {
    "devices.press": "device_signature",
    "devices.heartbeat": "device_signature",
    "devices.device_checkin": "device_signature",
}
PUBLIC = {
    "static", "openapi.spec", "openapi.docs", "openapi.swagger_ui_oauth_redirect", "health.healthz",
    "health.livez",
    "console.login",
    # Signing in is how a resident gets a token.
    "mobile_v1.sign_in", "mobile_v1.send_code", "mobile_v1.wechat_sign_in", "mobile_v1.wechat_url",
    "mobile_v1.refresh",
}
DENIED = {401, 403, 404, 405, 400}  # 400: the CSRF check refuses a form before anything else
_ADMIN_WRAPPER = admin_required(lambda: None).__code__


def guard_of(endpoint: str) -> str | None:
    if endpoint in PUBLIC:
        return "public"
    if endpoint in EXCEPTIONS:
        return EXCEPTIONS[endpoint]
    return GUARDS.get(endpoint.split(".")[0])


def routes(app, guard: str):
    """(endpoint, method, rule) of every route under `guard`."""
    for rule in app.url_map.iter_rules():
        if guard_of(rule.endpoint) != guard:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, rule


def is_admin_only(app, endpoint: str) -> bool:
    """A console view wrapped in admin_required (found by its code, so a new admin page is known at once)."""
    return getattr(app.view_functions[endpoint], "__code__", None) is _ADMIN_WRAPPER


# --- the world: street A (ours) and street B (theirs) -----------------------------------------------------

@pytest.fixture
def world(app, committed, storage):
    """Two streets, each with a resident who owns one of everything, staff and an admin (tests/helpers)."""
    return two_streets()


def ids_of(side: dict) -> dict:
    """Values for every path parameter the app's routes use."""
    return {
        "ticket_id": side["ticket_id"], "alert_id": side["alert_id"], "staff_id": side["staff_id"],
        "resident_id": side["resident_id"], "appointment_id": side["appointment_id"],
        "patient_id": side["patient_id"], "delegate_id": side["delegate_id"], "photo_id": side["photo_id"],
        "request_id": side["request_id"], "hold_id": side["hold_id"], "entry_id": side["entry_id"],
        "attempt_id": 1, "device_uid": "DEV-SWEEP", "topic": "sweep", "name": "volume",
        "filename": "console/console.css",
    }


@pytest.fixture
def web(app, world):
    return request_scoped_client(app)


def call(client, method: str, url: str, **kwargs):
    return client.open(url, method=method, **kwargs)


# --- the sweep ----------------------------------------------------------------------------------------------

def test_every_route_is_classified(app):
    unclassified = sorted({rule.endpoint for rule in app.url_map.iter_rules() if guard_of(rule.endpoint) is None})
    assert not unclassified, (
        f"routes nobody said how they are guarded: {unclassified}; add their blueprint to GUARDS, or the endpoint "
        "to EXCEPTIONS or PUBLIC in tests/reliability/test_authorization_sweep.py")


def test_no_service_token_route_answers_without_the_token_or_with_a_wrong_one(app, web, world):
    swept = 0
    for endpoint, method, rule in routes(app, "service_token"):
        url = build_url(rule, ids_of(world["a"]))
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "test-bot-tokenX"},
                        {"Authorization": "Basic dGVzdC1ib3QtdG9rZW4="}):
            response = call(web, method, url, headers=headers, json={})
            assert response.status_code == 401, (endpoint, method, headers, response.status_code)
            assert response.get_json()["error"]["code"] == "invalid_service_token"
            swept += 1
    assert swept >= 4 * 20


# A well-formed body for each device-signed route, so only the signature can refuse it.
DEVICE_BODIES = {"devices.press": {"press_id": "p1", "timestamp": 1},
                 "devices.heartbeat": {"battery": 50, "timestamp": 1}, "devices.device_checkin": {"timestamp": 1}}


def test_a_help_press_without_a_valid_device_signature_raises_nothing(app, web, world):
    for endpoint, method, rule in routes(app, "device_signature"):
        url = build_url(rule, ids_of(world["a"]))
        for headers in ({}, {"X-Linli-Signature": "0" * 64}, AUTH):
            response = call(web, method, url, headers=headers, json=DEVICE_BODIES[endpoint])
            assert response.status_code in (401, 403), (endpoint, headers, response.status_code)
    assert db.session.scalar(select(func.count(HelpAlert.id))) == 2  # the world's two, no new one
    # Nor a heartbeat or a check-in (issue 22's device-signed routes).
    assert db.session.scalar(select(func.count(DeviceHealth.device_id))) == 0
    assert db.session.scalar(select(func.count(Checkin.id))) == 0


def test_vendor_webhooks_refuse_unsigned_requests(app, web, world):
    for guard in ("twilio_signature", "wechat_signature", "aliyun_push_token"):
        for endpoint, method, rule in routes(app, guard):
            url = build_url(rule, ids_of(world["a"]))
            for headers in ({}, {"X-Twilio-Signature": "AAAA"}, AUTH):
                response = call(web, method, url, headers=headers, data={"From": "+8613900000001", "Body": "hi"})
                assert response.status_code in (400, 403), (endpoint, method, headers, response.status_code)


def test_no_console_route_answers_without_a_session(app, web, world, monkeypatch):
    for csrf_on in (True, False):
        monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", csrf_on)
        for endpoint, method, rule in routes(app, "staff_session"):
            response = call(web, method, build_url(rule, ids_of(world["a"])), data={"body": "x"})
            location = response.headers.get("Location", "")
            assert response.status_code in DENIED or (response.status_code == 302 and "/console/login" in location), \
                (endpoint, method, csrf_on, response.status_code, location)
            # A JSON caller gets 401, never the page.
            response = call(web, method, build_url(rule, ids_of(world["a"])), headers={"Accept": "application/json"})
            assert response.status_code in DENIED, (endpoint, method, response.status_code)


def test_admin_pages_refuse_a_staff_member(app, web, world, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    sign_in_console(web, world["a"]["staff"])
    admin_routes = [(e, m, r) for e, m, r in routes(app, "staff_session") if is_admin_only(app, e)]
    assert {"console.team_page", "console.team_duty"} <= {e for e, _, _ in admin_routes}
    for endpoint, method, rule in admin_routes:
        response = call(web, method, build_url(rule, ids_of(world["a"])), data={"on_duty": "0"})
        assert response.status_code == 403, (endpoint, method, response.status_code)


STREET_SCOPED_PARAMS = {"ticket_id", "alert_id", "staff_id", "resident_id"}


def _street_state() -> tuple:
    """What a refused action on street B's rows must leave exactly as it was."""
    db.session.expire_all()
    tickets = tuple(db.session.execute(select(Ticket.id, Ticket.status, Ticket.priority, Ticket.category,
                                              Ticket.assignee_id).order_by(Ticket.id)).all())
    alerts = tuple(db.session.execute(select(HelpAlert.id, HelpAlert.status, HelpAlert.accepted_staff_id)
                                      .order_by(HelpAlert.id)).all())
    events = db.session.scalar(select(func.count(TicketEvent.id)))
    return tickets, alerts, events


def test_console_actions_on_another_streets_rows_are_refused_and_change_nothing(app, web, world, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    theirs = ids_of(world["b"])
    # Valid values everywhere, so only the street (never a malformed field) can be the reason for a refusal.
    form = {"body": "越权回复", "status": "resolved", "priority": "urgent", "category": "other",
            "assignee_id": str(world["a"]["staff_id"]), "outcome": next(iter(OUTCOMES)), "note": "x", "on_duty": "0"}
    swept = 0
    for who in ("staff", "admin"):
        sign_in_console(web, world["a"][who])
        before = _street_state()
        for endpoint, method, rule in routes(app, "staff_session"):
            if not STREET_SCOPED_PARAMS & set(rule.arguments):
                continue
            if who == "staff" and is_admin_only(app, endpoint):
                continue  # refused by role already (test above)
            response = call(web, method, build_url(rule, theirs), data=form)
            assert response.status_code in (403, 404), (who, endpoint, method, response.status_code)
            swept += 1
        assert _street_state() == before, f"{who} of street A changed street B's rows"
        web.post("/console/logout")
    assert swept >= 15


def test_console_lists_and_reports_show_only_the_own_street(app, web, world, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    sign_in_console(web, world["a"]["admin"])
    foreign_ticket = f"/console/tickets/{world['b']['ticket_id']}"
    for view in ("mine", "unassigned", "open", "breached", "resolved"):
        assert foreign_ticket not in web.get(f"/console/queue?view={view}").get_data(as_text=True)
    alerts = web.get("/console/help/alerts.json").get_json()["alerts"]
    assert world["b"]["alert_id"] not in {a.get("id") for a in alerts}
    # The simulator may not post as, or read the replies of, a resident of another street.
    assert web.post("/console/simulator/send", json={"openid": world["b"]["openid"], "text": "冒充"}).status_code == 404
    assert web.get(f"/console/simulator/feed?openid={world['b']['openid']}").status_code == 404




def test_no_mobile_route_answers_without_aresident_headers(app, web, world):
    staff_token = AUTH  # the bot's service token is not a resident's
    for endpoint, method, rule in routes(app, "resident_token"):
        url = build_url(rule, ids_of(world["a"]))
        for headers in ({}, staff_token, {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}):
            response = call(web, method, url, headers=headers, json={})
            assert response.status_code == 401, (endpoint, method, headers, response.status_code)


def test_a_signed_out_resident_token_opens_nothing(app, web, world):
    tokens = resident_auth.open_session(resident_id=world["a"]["resident_id"], method="sms")
    resident_auth.sign_out(session_id=tokens.session_id)
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    for endpoint, method, rule in routes(app, "resident_token"):
        response = call(web, method, build_url(rule, ids_of(world["a"])), headers=headers, json={})
        assert response.status_code == 401, (endpoint, method, response.status_code)


MOBILE_OWNED_PARAMS = {"appointment_id", "patient_id", "delegate_id", "photo_id", "request_id", "resident_id"}


def test_a_resident_cannot_reach_another_residents_rows_through_the_mobile_api(app, web, world):
    """Resident A (not B's delegate) names B's appointment, family member, photo, request or help chain."""
    headers = resident_headers(world["a"]["resident_id"])
    theirs = ids_of(world["b"])
    swept = 0
    before = _street_state()
    for endpoint, method, rule in routes(app, "resident_token"):
        if not MOBILE_OWNED_PARAMS & set(rule.arguments):
            continue
        response = call(web, method, build_url(rule, theirs), headers=headers,
                        json={"slot_id": 1, "name": "x", "contacts": [], "score": 5})
        assert response.status_code in (403, 404, 422), (endpoint, method, response.status_code,
                                                         response.get_data(as_text=True)[:200])
        if response.status_code == 422:  # refused on its body first: the same call with a valid body must not pass
            assert method != "GET", endpoint
        swept += 1
    assert _street_state() == before
    db.session.expire_all()
    assert booking.list_appointments(resident_id=world["b"]["resident_id"], active_only=True)  # still booked
    assert swept >= 8
