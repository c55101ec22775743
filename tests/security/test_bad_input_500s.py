"""Input an attacker (or a confused client) sends gets a 4xx, never a 500: characters that pass str.isdigit()
but not int(), JSON that is valid syntax but not storable text or too deep to parse, query parameters named like
url_for's own arguments, dates at the ends of the calendar, a header injection in the login's `next`, and a sign-in
while Redis is down (issue 26)."""
from __future__ import annotations

import json
import re

import pytest
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis import Redis

from app.core.extensions import limiter
from app.core.redis_client import RedisState
from tests.factories import PatientFactory, ResidentFactory, StaffFactory, StreetFactory
from tests.helpers.mobile import idem, sign_in

SERVICE = {"Authorization": "Bearer test-bot-token"}
DEAD_REDIS = "redis://127.0.0.1:9/0"  # a closed port: what a stopped Redis looks like to a client
LONE_SURROGATE = '{"name": "\\ud800"}'  # valid JSON syntax; no UTF-8 text can hold it
DEEP = "[" * 100_000 + "]" * 100_000


def csrf_from(client, path="/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def login(client, staff, next_=None):
    data = {"username": staff.username, "password": "correct horse", "csrf_token": csrf_from(client)}
    if next_ is not None:
        data["next"] = next_
    return client.post("/console/login", data=data)


@pytest.fixture
def street(session):
    return StreetFactory()


@pytest.fixture
def staff_client(client, street):
    assert login(client, StaffFactory(street=street)).status_code == 302
    return client


@pytest.fixture
def admin_client(client, street):
    assert login(client, StaffFactory(street=street, role="admin")).status_code == 302
    return client


def json_error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    return response.get_json()["error"]["code"]


# --- "²" passes str.isdigit(), and int("²") raises ------------------------------------------------------------

def test_superscript_digit_as_a_department_of_the_booking_api_is_not_found(client):
    response = client.get("/api/booking/slots?department=²&date_from=2024-05-01", headers=SERVICE)
    assert json_error(response, 404) == "not_found"


def test_superscript_digit_as_a_department_of_the_console_appointments_page_is_refused(staff_client):
    response = staff_client.get("/console/appointments?department=²")
    assert response.status_code == 422
    assert "科室参数无效" in response.get_data(as_text=True)


def test_superscript_digit_as_the_simulator_feed_cursor_reads_from_the_start(staff_client, monkeypatch, app):
    monkeypatch.setitem(app.config, "SIMULATOR_ENABLED", True)
    response = staff_client.get("/console/simulator/feed?openid=oDemo2601&after=²")
    assert response.status_code == 200 and response.get_json() == {"messages": []}


def test_superscript_digit_as_the_row_count_of_a_help_chain_form_is_refused(staff_client, street):
    resident = ResidentFactory(community__street=street, is_elderly=True)
    token = csrf_from(staff_client, f"/console/help/residents/{resident.id}")
    response = staff_client.post(f"/console/help/residents/{resident.id}", data={"rows": "²", "csrf_token": token})
    assert response.status_code == 422  # no rows: an empty chain, refused with the form shown again


# --- JSON bodies: a lone surrogate, and nesting deeper than the parser's recursion ------------------------------

@pytest.mark.parametrize("body", [LONE_SURROGATE, DEEP], ids=["lone_surrogate", "nested_100000_deep"])
def test_a_json_body_the_schemas_parse_is_refused_as_invalid_json(client, body):
    patient = PatientFactory()
    response = client.patch(f"/api/booking/residents/{patient.resident_id}/patients/{patient.id}", data=body,
                            headers=SERVICE, content_type="application/json")
    assert json_error(response, 400) == "invalid_json"


@pytest.mark.parametrize("body", [LONE_SURROGATE, DEEP], ids=["lone_surrogate", "nested_100000_deep"])
def test_a_json_body_read_by_get_json_is_refused_as_invalid_json(client, app, session, body):
    """/api/v1's idempotency guard reads the body with request.get_json before the schema does."""
    tokens = sign_in(client, app, "13800002601")
    response = client.post("/api/v1/family", data=body, headers=idem(tokens), content_type="application/json")
    assert json_error(response, 400) == "invalid_json"


def test_a_paired_surrogate_escape_is_ordinary_text(client):
    patient = PatientFactory()
    response = client.patch(f"/api/booking/residents/{patient.resident_id}/patients/{patient.id}",
                            data=json.dumps({"name": "老王😀"}), headers=SERVICE, content_type="application/json")
    assert response.status_code == 200 and response.get_json()["patient"]["name"] == "老王😀"


# --- a query parameter named like one of url_for's arguments ---------------------------------------------------

@pytest.mark.parametrize("name", ["endpoint", "_external", "_anchor", "_scheme", "_method"])
def test_the_queue_ignores_query_parameters_it_does_not_know(staff_client, name):
    response = staff_client.get(f"/console/queue?{name}=x&view=open")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-poll-url="/console/queue/rows?view=open"' in html


# --- report dates at the ends of the calendar ------------------------------------------------------------------

@pytest.mark.parametrize("query", ["start=0001-01-01&end=0001-01-05", "end=0001-01-01",
                                   "start=9999-12-01&end=9999-12-31", "start=2024-05-01&end=9999-12-31"])
def test_report_dates_out_of_the_supported_range_are_refused(admin_client, query):
    response = admin_client.get(f"/console/api/reports/volume?{query}")
    assert json_error(response, 422) == "invalid_range"
    page = admin_client.get(f"/console/reports?{query}")
    assert page.status_code == 422


# --- the login's `next` --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("next_", ["/console/queue\r\nSet-Cookie: planted=1", "/console/queue\nX: 1",
                                   "/console/queue\x00", "/console/\tqueue"])
def test_control_characters_in_next_send_staff_to_the_queue(client, street, next_):
    response = login(client, StaffFactory(street=street), next_=next_)
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/queue"
    assert "planted" not in response.headers.get("Set-Cookie", "")


def test_a_plain_console_path_in_next_is_still_followed(client, street):
    response = login(client, StaffFactory(street=street), next_="/console/help?view=open")
    assert response.status_code == 302 and response.headers["Location"] == "/console/help?view=open"


# --- signing in while Redis is down -------------------------------------------------------------------------------

@pytest.fixture
def redis_down(app, monkeypatch):
    """Redis unreachable for the rate limiter and the app alike, as a stopped Redis server is."""
    storage = storage_from_string(DEAD_REDIS, socket_connect_timeout=1, socket_timeout=1)
    monkeypatch.setattr(limiter, "_storage", storage)
    monkeypatch.setattr(limiter, "_limiter", FixedWindowRateLimiter(storage))
    monkeypatch.setattr(limiter, "_storage_dead", False)  # restored afterwards: later tests see a live Redis
    monkeypatch.setitem(app.extensions, "linli_redis",
                        RedisState(redis=Redis.from_url(DEAD_REDIS, socket_connect_timeout=1), queues={}))
    assert limiter.enabled  # the login's limit really is checked in these tests


def test_staff_can_sign_in_while_redis_is_down(client, street, redis_down):
    token = csrf_from(client)
    staff = StaffFactory(street=street)
    response = client.post("/console/login", data={"username": staff.username, "password": "correct horse",
                                                   "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/console/queue"


def test_the_login_limit_still_holds_while_redis_is_down(client, street, redis_down):
    token = csrf_from(client)
    answers = [client.post("/console/login", data={"username": "nobody", "password": "guess", "csrf_token": token},
                           environ_base={"REMOTE_ADDR": "10.26.0.1"}).status_code for _ in range(21)]
    assert answers[:20] == [401] * 20
    assert answers[20] == 429
