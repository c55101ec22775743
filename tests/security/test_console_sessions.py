"""A console session ends on the server, not only in the browser that held it.

The attack this closes: the console's session was only a signed cookie naming the staff member, so a copy taken
before logout (a shared office PC, a proxy log, a borrowed browser profile) kept working for the cookie's 31 days.
Each sign-in now opens a server-side session (a `staff_sessions` row holding the hash of a random token the cookie
carries); every request needs that row. Logging out deletes it, so copies of that cookie die with it.

Per session, not "log out everywhere": staff use a duty tablet and their own phone at once, and logging out of
one must not cut the other off in the middle of a reply. Ending every session at once is what a password change
and deactivation do (a stolen cookie is dealt with by either), because the row is bound to the password it was
opened with and the account must still be active.
"""
from __future__ import annotations

import pytest
from flask import g
from werkzeug.security import generate_password_hash

from tests.factories import StaffFactory, StreetFactory
from tests.integration.test_console_auth import csrf_from
from tests.integration.test_console_auth import login as form_login


@pytest.fixture
def member(session):
    return StaffFactory(street=StreetFactory())


def as_another_browser() -> None:
    """Every test client's requests share the test's app context, hence `g`: forget the user Flask-Login and the
    CSRF token Flask-WTF cached there for the previous request, as a real request would never have seen them."""
    g.pop("_login_user", None)
    g.pop("csrf_token", None)


def login(browser, member, password="correct horse"):
    as_another_browser()
    return form_login(browser, member, password)


def signed_in(browser) -> bool:
    as_another_browser()
    page = browser.get("/console/queue")
    if page.status_code == 302:
        assert page.headers["Location"].startswith("/console/login")
        as_another_browser()
        assert browser.get("/console/api/counts").status_code == 401
        return False
    assert page.status_code == 200
    return True


def logout(browser) -> None:
    as_another_browser()
    response = browser.post("/console/logout", data={"csrf_token": csrf_from(browser, "/console/queue")})
    assert response.status_code == 302


def test_a_session_cookie_copied_before_logout_is_dead_after_it(client, app, member):
    login(client, member)
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert signed_in(thief)  # the copy works while the session is open...

    logout(client)
    replay = app.test_client()
    replay.set_cookie("session", copied)
    assert not signed_in(replay)  # ...and not a moment after
    assert not signed_in(thief)


def test_logging_out_ends_that_session_only(client, app, member):
    tablet = app.test_client()
    login(client, member)
    login(tablet, member)
    logout(client)
    assert not signed_in(client)
    assert signed_in(tablet)


def test_a_password_change_ends_every_session_of_the_account(client, app, session, member):
    tablet = app.test_client()
    login(client, member)
    login(tablet, member)
    copied = tablet.get_cookie("session").value
    member.password_hash = generate_password_hash("a brand new passphrase")
    session.commit()
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert not signed_in(client) and not signed_in(tablet) and not signed_in(thief)
    assert login(client, member, password="a brand new passphrase").status_code == 302
    assert signed_in(client)


def test_deactivating_an_account_ends_every_session_of_it(client, app, session, member):
    tablet = app.test_client()
    login(client, member)
    login(tablet, member)
    member.active = False
    session.commit()
    assert not signed_in(client) and not signed_in(tablet)


def test_a_cookie_naming_a_staff_member_without_a_server_side_session_is_refused(client, member):
    # What every console cookie was before: signed, naming the account, and nothing on the server to revoke.
    as_another_browser()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = str(member.id)
        cookie["_fresh"] = True
    assert not signed_in(client)
