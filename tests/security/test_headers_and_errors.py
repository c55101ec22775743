"""What a browser is told about every answer, and what an error answer gives away (issue 24).

Headers: every response (JSON, XML, files, errors, the console's pages) says nosniff, may not be framed and sends
the Referer to this site only; the console runs no inline script, style or handler, so text a resident wrote cannot
become script in a staff member's browser (tests/e2e run the console in Chromium under this policy). HSTS goes only
on answers sent over TLS, which behind nginx means X-Forwarded-Proto from a trusted proxy.

Errors: an attacker forcing each error path (a value PostgreSQL refuses, a unique violation, a bug in a route, an
unknown path or method, a body too large) gets {"error": {"code", "message"}} and nothing else: no traceback, no
SQL, no SQL state, no table name; in development (with Flask's debug on) as in production.

Production's refusal of default secrets and of the simulator: tests/security/test_production_mode.py.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import text

from app import create_app
from app.core.extensions import db
from tests.conftest import TEST_SETTINGS, make_test_app
from tests.factories import PatientFactory, StaffFactory, StreetFactory
from tests.integration.test_console_auth import login

ROOT = Path(__file__).resolve().parents[2]
SERVICE = {"Authorization": "Bearer test-bot-token"}
TOO_LARGE = json.dumps({"name": "x" * (1024 * 1024 + 1)})  # over MAX_CONTENT_LENGTH (1 MB)
PRODUCTION = {"ENV": "production", "SECRET_KEY": "h24-production-secret-key-of-40-characters",
              "BOT_SERVICE_TOKEN": "h24-production-bot-token", "WECHAT_TOKEN": "h24ProductionWeChatToken",
              "TWILIO_AUTH_TOKEN": "h24-production-twilio-auth-token",
              "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_browser_headers(response) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)
    assert directives(headers.get("Content-Security-Policy", "")).get("frame-ancestors") == ["'none'"], dict(headers)
    assert headers.get("Referrer-Policy") == "same-origin", dict(headers)


# --- headers on every answer ----------------------------------------------------------------------------------------

EVERY_KIND = [
    ("json", "GET", "/livez", {}, 200),
    ("the api's description", "GET", "/openapi.json", {}, 200),
    ("unknown path", "GET", "/no/such/page", {}, 404),
    ("wrong method", "DELETE", "/livez", {}, 405),
    ("no token", "GET", "/api/v1/me", {}, 401),
    ("body too large", "POST", "/api/internal/handoff",
     {"data": TOO_LARGE, "content_type": "application/json", "headers": SERVICE}, 413),
    ("wechat webhook", "POST", "/wechat", {"data": "<xml/>", "content_type": "text/xml"}, 400),
    ("sms webhook", "POST", "/sms", {"data": {"Body": "hi"}}, 403),
    ("console page", "GET", "/console/login", {}, 200),
    ("console redirect", "GET", "/console/queue", {}, 302),
    ("console 404 page", "GET", "/console/no-such-page", {}, 404),
    ("static file", "GET", "/static/console/console.js", {}, 200),
]


@pytest.mark.parametrize("kind, method, path, kwargs, status", EVERY_KIND, ids=[k[0] for k in EVERY_KIND])
def test_every_kind_of_answer_carries_the_browser_security_headers(client, kind, method, path, kwargs, status):
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert_browser_headers(response)
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP


def test_the_console_runs_no_inline_script_style_or_plugin(client, session):
    """The policy itself, directive by directive, on the pages a staff member opens and the fragments they poll."""
    pages = [client.get("/console/login")]
    assert login(client, StaffFactory(street=StreetFactory())).status_code == 302
    pages += [client.get(path) for path in ("/console/queue", "/console/queue/rows", "/console/api/counts",
                                            "/console/help", "/console/help/board.js", "/console/no-such-page")]
    for page in pages:
        assert page.status_code in (200, 404), page.request.path
        policy = directives(page.headers["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], page.request.path
        assert policy["style-src"] == ["'self'"], page.request.path
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
        assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
        assert not any("unsafe" in value or value == "*" for values in policy.values() for value in values)


class _InlineFinder(HTMLParser):
    """Whatever a script-src/style-src 'self' policy would refuse to run: inline scripts, handlers, styles."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self._in_script = tag == "script" and "src" not in names
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower() \
                    .startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append("inline <script>")


CONSOLE_HTML = sorted((ROOT / "app/templates/console").glob("*.html"))
# The console's scripts build markup from strings: a handler or a style attribute written there is refused too.
CONSOLE_SCRIPTS = sorted((ROOT / "app/static/console").glob("*.js")) + [ROOT / "app/templates/console/help_board.js"]


@pytest.mark.parametrize("template", CONSOLE_HTML, ids=lambda p: p.name)
def test_console_templates_hold_no_inline_script_handler_or_style(template):
    finder = _InlineFinder()
    finder.feed(template.read_text(encoding="utf-8"))
    assert finder.found == [], template.name


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS, ids=lambda p: p.name)
def test_console_scripts_write_no_inline_handler_or_style_into_markup(script):
    source = script.read_text(encoding="utf-8")
    assert not re.search(r"""<[a-z][^>]*\s(on[a-z]+|style)\s*=""", source, re.IGNORECASE), script.name
    assert not re.search(r"\beval\s*\(|new\s+Function\s*\(|setTimeout\s*\(\s*['\"]", source), script.name


def test_swagger_ui_outside_production_keeps_only_the_framing_rule(client):
    """Swagger UI loads its scripts from a CDN; it is never served in production (test_production_mode.py)."""
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


# --- HSTS: only over TLS, and behind the proxy only when a trusted proxy says so --------------------------------

@pytest.fixture(scope="module")
def proxied_app():
    """One trusted proxy in front (deploy/gunicorn.conf.py), as behind nginx."""
    return make_test_app(TRUSTED_PROXY_HOPS=1)


def test_hsts_is_sent_on_an_answer_over_tls(client):
    response = client.get("/livez", base_url="https://linli.test")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/livez", base_url="http://linli.test").headers


@pytest.mark.parametrize("proto, hsts", [("https", True), ("http", False)])
def test_behind_the_trusted_proxy_hsts_follows_x_forwarded_proto(proxied_app, proto, hsts):
    response = proxied_app.test_client().get(
        "/livez", headers={"X-Forwarded-Proto": proto, "X-Forwarded-For": "203.0.113.9"})
    assert ("Strict-Transport-Security" in response.headers) is hsts


def test_without_a_trusted_proxy_x_forwarded_proto_brings_no_hsts(client):
    response = client.get("/livez", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers


# --- error answers give nothing away ------------------------------------------------------------------------------

# What PostgreSQL, psycopg, SQLAlchemy or Python would put into an answer that leaked the exception.
LEAKS = ("Traceback", 'File "', "SELECT", "INSERT", "UPDATE ", "psycopg", "sqlalchemy", "SQLSTATE", "[SQL",
         "Background on this error", "integer out of range", "duplicate key", "0x00", "22003", "23505", "h24_",
         "patients", "password_hash", "RuntimeError", "IntegrityError", "DataError")


@pytest.fixture(params=["development", "production"])
def mode_app(request, session):
    """A fresh app of the mode, with routes of its own (added before its first request) that fail as a bug would."""
    overrides = {"ENV": "development"} if request.param == "development" else PRODUCTION
    app = create_app({**TEST_SETTINGS, **overrides})
    app.debug = request.param == "development"  # `flask run --debug`: the mode where a traceback page could show

    @app.get("/_h24/bug")
    def _h24_bug():
        raise RuntimeError("SELECT password_hash FROM staff WHERE username = 'h24_admin'")

    @app.get("/_h24/duplicate")
    def _h24_duplicate():
        db.session.execute(text("CREATE TEMP TABLE IF NOT EXISTS h24_once (id integer PRIMARY KEY)"))
        db.session.execute(text("INSERT INTO h24_once VALUES (1), (1)"))  # a real unique violation (23505)
        return {}

    assert app.extensions["linli_settings"].is_production is (request.param == "production")
    return app


def _service(app) -> dict:
    return {"Authorization": f"Bearer {app.config['BOT_SERVICE_TOKEN']}"}


def _error_paths(app):
    patient = PatientFactory()
    patients = f"/api/booking/residents/{patient.resident_id}"
    return {
        # PostgreSQL refuses the value: 2**40 bound as an integer (SQLSTATE 22003 on the server)
        "data_error_integer_out_of_range": (
            "POST", f"{patients}/appointments", {"json": {"slot_id": 2**40, "patient_id": 2**40}}, 422, "invalid_value"),
        # psycopg refuses NUL in text before it reaches the server
        "data_error_nul_in_text": (
            "PATCH", f"{patients}/patients/{patient.id}", {"json": {"name": "a\x00b"}}, 422, "invalid_value"),
        "integrity_error": ("GET", "/_h24/duplicate", {}, 409, "conflict"),
        "unexpected_exception": ("GET", "/_h24/bug", {}, 500, "internal_error"),
        "not_found": ("GET", "/_h24/nowhere", {}, 404, "not_found"),
        "method_not_allowed": ("DELETE", "/livez", {}, 405, "method_not_allowed"),
        "too_large": ("PATCH", f"{patients}/patients/{patient.id}",
                      {"data": TOO_LARGE, "content_type": "application/json"}, 413, "request_entity_too_large"),
    }


ERROR_PATHS = ["data_error_integer_out_of_range", "data_error_nul_in_text", "integrity_error", "unexpected_exception",
               "not_found", "method_not_allowed", "too_large"]


@pytest.mark.parametrize("path_name", ERROR_PATHS)
def test_an_error_answer_is_code_and_message_only(mode_app, path_name):
    method, path, kwargs, status, code = _error_paths(mode_app)[path_name]
    response = mode_app.test_client().open(path, method=method, headers=_service(mode_app), **kwargs)

    raw = response.get_data(as_text=True)
    assert response.status_code == status, raw[:500]
    assert response.mimetype == "application/json", raw[:500]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code
    assert all(isinstance(value, str) and value for value in body["error"].values())
    leaked = [word for word in LEAKS if word.lower() in raw.lower()]
    assert not leaked, (leaked, raw)
    assert_browser_headers(response)  # error answers carry the headers too, in either mode
