"""Sign-in abuse: lockouts an attacker could aim at someone else, usernames told apart by their answers, and
WeChat OAuth states that could be replayed or carried to another client.

Staff console (app/services/staff/auth.py). Before: 5 wrong passwords locked the account for 15 minutes whoever
typed them, and only existing usernames ever answered 423, so a stranger could both list the staff and lock any of
them out. Now failures count per (username, client address) and per username, for every name typed, known or not:
  - 5 failures from one address refuse that name from that address for 15 minutes: one address gets at most
    5 guesses per 15 minutes = 20 an hour at one account;
  - 50 failures from any addresses refuse that name for the hour: however many addresses an attacker has, an
    account gets at most 50 guesses an hour = 1,200 a day (a 12-character password is out of reach of that).
Locking the owner out now takes at least 10 addresses (50 / 5) and lasts at most an hour, instead of 5 tries
from anywhere. A refused attempt checks no password, and answers the same for known and unknown names.

Residents' SMS codes (app/services/residents/auth.py). Before: 10 junk tries an hour at a phone, whoever made
them, refused its owner's next sign-in even with a fresh code. Now a wrong try burns the code it was aimed at (5
tries and it is dead) and never the phone: with MOBILE_CODES_PER_PHONE_HOUR = 5 codes an hour, a phone gets at
most 5 x 5 = 25 guesses an hour at its 10^6 codes (2.5e-5 an hour), and each address at most
MOBILE_SIGN_IN_TRIES_PER_IP_HOUR = 50 tries an hour at any phones.

WeChat OAuth (app/api/v1/auth.py). Before: a state was a signed, 10-minute token anyone could present any number
of times. Now it is a random nonce kept in Redis for 10 minutes with the hash of a secret held in the asking
client's HttpOnly cookie, and consumed (GETDEL) by its first use.
"""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from app.core import transports
from app.models import SignInCode
from tests.factories import StaffFactory, StreetFactory
from tests.helpers.mobile import bearer, error_code, idem, last_code, send_code, sign_in
from tests.integration.test_console_auth import csrf_from
from tests.security.test_console_sessions import as_another_browser

CHEAP_HASH = generate_password_hash("correct horse", method="pbkdf2:sha256:1000")
ATTACKER, OWNER = "10.6.6.6", "10.1.1.1"


def console_login(browser, username: str, password: str, address: str):
    as_another_browser()
    token = csrf_from(browser)
    return browser.post("/console/login", data={"username": username, "password": password, "csrf_token": token},
                        environ_base={"REMOTE_ADDR": address})


def answer(response) -> tuple[int, str]:
    """What a login answer tells the person who sent it: the status and the message shown."""
    shown = re.search(r'<div class="flash error" role="alert">([^<]*)</div>', response.get_data(as_text=True))
    return response.status_code, shown.group(1) if shown else ""


@pytest.fixture
def member(session):
    return StaffFactory(street=StreetFactory(), password_hash=CHEAP_HASH)


# --- staff console ---------------------------------------------------------------------------------

def test_a_stranger_failing_at_a_staff_name_does_not_lock_its_owner_out(client, app, member):
    for _ in range(8):
        console_login(client, member.username, "guess", ATTACKER)
    owner = app.test_client()
    response = console_login(owner, member.username, "correct horse", OWNER)
    assert response.status_code == 302, answer(response)
    as_another_browser()
    assert owner.get("/console/queue").status_code == 200


def test_known_and_unknown_names_get_the_same_answers(client, app, member):
    known = [answer(console_login(client, member.username, "guess", ATTACKER)) for _ in range(7)]
    unknown = [answer(console_login(client, "no-such-staff", "guess", ATTACKER)) for _ in range(7)]
    assert known == unknown
    assert known[0] == (401, "用户名或密码错误")
    assert known[-1][0] == 429  # the address is refused for both names alike


def test_one_address_gets_five_guesses_then_not_even_the_right_password(client, app, member):
    for _ in range(5):
        assert console_login(client, member.username, "guess", ATTACKER).status_code == 401
    refused = console_login(client, member.username, "correct horse", ATTACKER)
    assert refused.status_code == 429
    as_another_browser()
    assert client.get("/console/queue").status_code == 302


def test_many_addresses_together_get_fifty_guesses_an_hour_at_one_account(client, app, member):
    for n in range(10):
        for _ in range(5):
            assert console_login(client, member.username, "guess", f"10.8.0.{n}").status_code == 401
    # The account-wide budget is spent: a new address, even with the right password, is refused for the hour.
    assert console_login(client, member.username, "correct horse", "10.8.1.1").status_code == 429
    assert console_login(client, member.username, "correct horse", OWNER).status_code == 429


def test_a_success_clears_the_failures_of_that_address(client, app, member):
    for _ in range(4):
        console_login(client, member.username, "guess", OWNER)
    assert console_login(client, member.username, "correct horse", OWNER).status_code == 302
    as_another_browser()
    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/queue")})
    for _ in range(4):
        assert console_login(client, member.username, "typo", OWNER).status_code == 401
    assert console_login(client, member.username, "correct horse", OWNER).status_code == 302


# --- residents' SMS codes --------------------------------------------------------------------------

PHONE, E164 = "13800138111", "+8613800138111"


def code_sign_in(client, code, address):
    return client.post("/api/v1/auth/sign-in", json={"phone": PHONE, "code": code},
                       environ_base={"REMOTE_ADDR": address})


def test_junk_code_tries_burn_the_code_but_never_lock_the_phone_owner_out(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    assert send_code(client, PHONE, ip=OWNER).status_code == 202
    first = last_code(app, E164)
    junk = "000000" if first != "000000" else "111111"
    answers = [code_sign_in(client, junk, f"10.6.6.{n % 3}").get_json()["error"]["code"] for n in range(12)]
    assert answers[:5] == ["invalid_code"] * 5 and set(answers[5:]) == {"code_locked"}
    assert error_code(code_sign_in(client, first, OWNER), 429) == "code_locked"  # the code they aimed at is dead

    assert send_code(client, PHONE, ip=OWNER).status_code == 202
    response = code_sign_in(client, last_code(app, E164), OWNER)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_each_code_takes_five_guesses_and_codes_are_limited_per_phone(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    for n in range(app.config["MOBILE_CODES_PER_PHONE_HOUR"]):
        assert send_code(client, PHONE, ip=f"10.5.0.{n}").status_code == 202
        code = last_code(app, E164)
        junk = "000000" if code != "000000" else "111111"
        for _ in range(5):
            assert error_code(code_sign_in(client, junk, f"10.5.1.{n}"), 401) == "invalid_code"
        assert error_code(code_sign_in(client, code, f"10.5.1.{n}"), 429) == "code_locked"
    assert error_code(send_code(client, PHONE, ip="10.5.9.9"), 429) == "rate_limited"
    assert session.query(SignInCode).filter_by(phone=E164).count() == 5


def codes_texted_to(app, phone: str) -> list[str]:
    with app.app_context():
        return [body for body in transports.get().twilio.sms_to(phone) if "验证码" in body]


def test_codes_to_one_phone_are_limited_per_day_across_sign_in_and_phone_links(client, app, monkeypatch):
    """An hourly window alone let a phone be texted MOBILE_CODES_PER_PHONE_HOUR codes every hour, all day long; the
    daily budget counts sign-in codes and phone-link codes together, whoever asks."""
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    monkeypatch.setitem(app.config, "MOBILE_CODES_PER_PHONE_HOUR", 100)  # as if every batch came in a new hour
    daily = app.config["MOBILE_CODES_PER_PHONE_DAY"]
    assert daily == 10
    linker = sign_in(client, app, "13800138222", ip="10.7.0.1")
    texted_before = len(codes_texted_to(app, E164))
    for n in range(daily - 3):
        assert send_code(client, PHONE, ip=f"10.7.1.{n}").status_code == 202
    for n in range(3):
        linked = client.post("/api/v1/me/channels/phone", json={"phone": PHONE}, headers=idem(linker),
                             environ_base={"REMOTE_ADDR": f"10.7.2.{n}"})
        assert linked.status_code == 202, linked.get_data(as_text=True)
    refused = send_code(client, PHONE, ip="10.7.3.1")
    assert error_code(refused, 429) == "rate_limited"
    assert refused.get_json()["error"]["details"]["retry_after"] > 23 * 3600  # the day's window, not the hour's
    assert len(codes_texted_to(app, E164)) - texted_before == daily
    assert send_code(client, "13800138333", ip="10.7.3.1").status_code == 202  # another phone is not held back


# --- WeChat OAuth state ----------------------------------------------------------------------------

@pytest.fixture
def wechat_oauth(app, monkeypatch, wechat_stub):
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", wechat_stub.app_id)
    monkeypatch.setitem(app.config, "WECHAT_SECRET", wechat_stub.secret)
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", wechat_stub.api_base)
    return wechat_stub


def oauth_state(browser) -> str:
    response = browser.get("/api/v1/auth/wechat/authorize-url", query_string={"redirect_uri": "https://h5.linli.test/cb"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["state"]


def test_a_used_oauth_state_cannot_be_replayed(client, session, wechat_oauth):
    state = oauth_state(client)
    first = client.post("/api/v1/auth/wechat", json={"code": wechat_oauth.issue_oauth_code("o-replay"), "state": state})
    assert first.status_code == 200, first.get_data(as_text=True)
    again = client.post("/api/v1/auth/wechat", json={"code": wechat_oauth.issue_oauth_code("o-replay"), "state": state})
    assert error_code(again, 401) == "invalid_oauth_state"


def test_a_state_minted_for_another_client_is_refused(client, app, session, wechat_oauth):
    victims_state = oauth_state(client)
    thief = app.test_client()
    oauth_state(thief)  # the thief has a binding cookie of its own: it is not the victim's
    response = thief.post("/api/v1/auth/wechat", json={"code": wechat_oauth.issue_oauth_code("o-victim"),
                                                       "state": victims_state})
    assert error_code(response, 401) == "invalid_oauth_state"
    bare = app.test_client()  # no cookie at all
    response = bare.post("/api/v1/auth/wechat", json={"code": wechat_oauth.issue_oauth_code("o-victim"),
                                                      "state": oauth_state(client)})
    assert error_code(response, 401) == "invalid_oauth_state"


def test_a_state_minted_for_another_client_cannot_link_a_wechat_account(client, app, session, wechat_oauth):
    victims_state = oauth_state(client)
    thief = app.test_client()
    tokens = sign_in(thief, app, "13900139222")
    response = thief.post("/api/v1/me/channels/wechat", headers=bearer(tokens),
                          json={"code": wechat_oauth.issue_oauth_code("o-victim-link"), "state": victims_state})
    assert error_code(response, 401) == "invalid_oauth_state"
    me = thief.get("/api/v1/me", headers=bearer(tokens)).get_json()
    assert not any(ch["channel"] == "wechat" and ch["linked"] for ch in me["channels"])


def test_each_state_works_once_for_the_browser_it_was_minted_for(client, session, wechat_oauth):
    first, second = oauth_state(client), oauth_state(client)  # two tabs of one browser
    for state in (second, first):
        response = client.post("/api/v1/auth/wechat", json={"code": wechat_oauth.issue_oauth_code("o-tabs"),
                                                            "state": state})
        assert response.status_code == 200, response.get_data(as_text=True)
