"""Every cookie the app sets is out of scripts' reach (HttpOnly), stays home on cross-site requests (SameSite=Lax),
and in production travels over HTTPS only (Secure): read from the Set-Cookie headers themselves, not the settings.

The cookies there are:
  - `session`, the console's signed session: it carries the token of the server-side staff session and the CSRF
    secret (Flask-WTF keeps that in the session: there is no CSRF cookie of its own);
  - `linli_oauth_client`, the secret a browser's WeChat OAuth states are bound to (app/api/v1/guards.py).
Flask-Login's remember cookie is never set (login_user without remember), and nor is any cookie by the
token-authenticated mobile API: both are asserted, so adding either one later must pass through this file.
Development and test may send cookies over plain HTTP (a laptop has no TLS); HttpOnly and SameSite hold everywhere.
"""
from __future__ import annotations

import re

import pytest
from flask import g

from tests.conftest import make_test_app
from tests.factories import StaffFactory, StreetFactory
from tests.helpers.mobile import bearer, sign_in
from tests.security.test_production_mode import STRONG

OAUTH = {"WECHAT_APP_ID": "wx-cookie-test", "WECHAT_SECRET": "wechat-secret-of-the-cookie-test"}
CONSOLE_COOKIES = {"session"}  # the only cookie the console may set (no remember_token, no csrf cookie)


@pytest.fixture(scope="module")
def production_app():
    return make_test_app(ENV="production", **STRONG, **OAUTH)


@pytest.fixture(scope="module")
def development_app():
    return make_test_app(ENV="development", **OAUTH)


@pytest.fixture(params=["production", "development"])
def mode(request):
    """(app, whether its cookies must be Secure, the scheme its clients use)."""
    if request.param == "production":
        return request.getfixturevalue("production_app"), True, "https"
    return request.getfixturevalue("development_app"), False, "http"


def set_cookies(response) -> list[tuple[str, dict[str, str]]]:
    """Each Set-Cookie header as (name, {attribute in lower case: value}); a flag's value is ""."""
    parsed = []
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name = first.split("=", 1)[0]
        attrs = {}
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            attrs[key.strip().lower()] = value.strip()
        parsed.append((name, attrs))
    return parsed


def assert_guarded(cookie: tuple[str, dict[str, str]], *, secure: bool) -> None:
    name, attrs = cookie
    assert "httponly" in attrs, f"{name} is readable by scripts: {attrs}"
    assert attrs.get("samesite", "").lower() == "lax", f"{name} goes along on cross-site requests: {attrs}"
    assert ("secure" in attrs) is secure, f"{name}: Secure is {'secure' in attrs}, expected {secure}: {attrs}"


def csrf_of(page) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)


def fresh_request() -> None:
    # Test clients share the test's app context (hence `g`): forget what the previous request cached there.
    g.pop("_login_user", None)
    g.pop("csrf_token", None)


def test_the_console_cookie_is_httponly_samesite_and_secure_in_production(session, mode):
    app, secure, scheme = mode
    username = StaffFactory(street=StreetFactory()).username
    session.commit()  # the other app's requests end their app contexts, which removes the test's session
    base = f"{scheme}://linli.test"
    browser = app.test_client()
    seen = []

    fresh_request()
    page = browser.get("/console/login", base_url=base)
    seen += set_cookies(page)  # the CSRF secret is stored in the session: the cookie is set before any sign-in
    fresh_request()
    # Flask-WTF checks the Referer of HTTPS posts (WTF_CSRF_SSL_STRICT): a browser sends its own page.
    signed_in = browser.post("/console/login", base_url=base, headers={"Referer": f"{base}/console/login"},
                             data={"username": username, "password": "correct horse", "csrf_token": csrf_of(page)})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    seen += set_cookies(signed_in)
    fresh_request()
    queue = browser.get("/console/queue", base_url=base)
    assert queue.status_code == 200, "the session cookie did not come back"
    seen += set_cookies(queue)
    fresh_request()
    signed_out = browser.post("/console/logout", base_url=base, headers={"Referer": f"{base}/console/queue"},
                              data={"csrf_token": csrf_of(queue)})
    assert signed_out.status_code == 302
    seen += set_cookies(signed_out)

    assert {name for name, _ in seen} == CONSOLE_COOKIES, seen
    assert any(name == "session" for name, _ in set_cookies(signed_in))  # a fresh session at sign-in
    for cookie in seen:
        assert_guarded(cookie, secure=secure)


def test_the_oauth_client_cookie_is_httponly_samesite_and_secure_in_production(session, mode):
    app, secure, scheme = mode
    response = app.test_client().get("/api/v1/auth/wechat/authorize-url", base_url=f"{scheme}://linli.test",
                                     query_string={"redirect_uri": "https://h5.linli.test/cb"})
    assert response.status_code == 200, response.get_data(as_text=True)
    cookies = set_cookies(response)
    assert [name for name, _ in cookies] == ["linli_oauth_client"]
    assert_guarded(cookies[0], secure=secure)
    assert cookies[0][1]["path"] == "/api/v1/"  # sent to the mobile API only, never to the console's pages


def test_the_mobile_api_sets_no_cookie_it_authenticates_by_bearer_token_only(session, mode):
    """/api/v1 is exempt from CSRF because a browser never adds a bearer header by itself: no cookie may creep in."""
    app, _, scheme = mode
    client = app.test_client()
    tokens = sign_in(client, app, "13800138555")
    base = f"{scheme}://linli.test"
    answers = [
        client.post("/api/v1/auth/sms-code", base_url=base, json={"phone": "13800138556"}),
        client.post("/api/v1/auth/refresh", base_url=base, json={"refresh_token": tokens["refresh_token"]}),
        client.get("/api/v1/me", base_url=base, headers=bearer(tokens)),
    ]
    for response in answers:
        assert response.status_code < 500 and set_cookies(response) == [], response.headers
