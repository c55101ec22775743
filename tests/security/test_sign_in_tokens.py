"""A resident's sign-in as an attacker sees it: six-digit SMS codes to guess, phones to flood with codes, refresh
tokens to steal and replay, tokens that should die when their owner signs out.

Guessing a code (app/services/residents/auth.py, identities.py; the budgets of app/core/config.py Settings):
  - a code lives CODE_TTL = 5 minutes, works once, and each new code for the phone ends the previous one;
  - a sign-in code is judged at most CODE_TRIES = 5 times, in parallel too (the try is spent in a guarded UPDATE
    before comparing); the 6th try is refused even with the right code. Tries burn the code, never the phone;
  - a phone is texted at most MOBILE_CODES_PER_PHONE_HOUR = 5 codes an hour, whoever asks from wherever, sign-in
    and phone-linking codes together, and at most one per MOBILE_CODE_RESEND_SECONDS = 60 s;
  - guesses at linking a phone (whose right guess can merge the phone's account into the guesser's) are budgeted
    per phone, MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR = 10 an hour, and each link code also dies after 5 tries;
  - each client address has MOBILE_SIGN_IN_TRIES_PER_IP_HOUR = 50 tries an hour at any phones, and
    MOBILE_CODES_PER_IP_HOUR = 20 codes texted.
  So a phone's codes take at most 5 codes x 5 tries = 25 guesses an hour however many addresses the attacker has
  (the 5 texts an hour may be split between sign-in and linking codes, and k sign-in codes and 5 - k link codes
  give at most 5k + min(10, 5(5 - k)) <= 25). Each guess is right with probability 10^-6 (a fresh random code each
  time), so:
      an hour:  25 x 10^-6 = 2.5e-5;   a day: 600 guesses, 6e-4;
      trying every one of the 10^6 codes once takes 10^6 / 25 = 40,000 hours, 4.6 years of nonstop attack,
      during which the phone's owner is texted 5 unasked codes an hour.
  One address alone gets 50 tries an hour at all phones together. A brute force of the code space is out of reach;
  what is left are a patient attacker's odds at one phone: about 20 % for a whole year of nonstop guessing
  (1 - (1 - 10^-6)^219,000), texting its owner 43,800 unasked codes on the way.

Tokens: a sign-in opens a session; its refresh tokens rotate on each use, and a refresh token presented a second
time (the owner and a thief both hold it) revokes the session: every access and refresh token descended from that
sign-in stops working, the newest included, whoever holds it. Access tokens are checked against their session on
every request, so signing out ends them at once, not when their 15 minutes are up.

Already proven elsewhere, not repeated here: the console's lockout and back-off per (name, address) and per name
(tests/security/test_sign_in_abuse.py, staff console section), junk tries never locking a phone's owner out and 5
codes x 5 tries at the real settings (its residents' SMS codes section), the chat's phone-link limits
(tests/security/test_phone_link_abuse.py), console sessions ending on the server (test_console_sessions.py).
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.core.config import Settings
from app.core.errors import DomainError
from app.core.extensions import db
from app.models.base import utcnow
from app.services import residents
from app.services.residents import auth as resident_auth
from app.services.residents import identities
from tests.factories import ResidentFactory
from tests.helpers.booking import race
from tests.helpers.mobile import bearer, error_code, last_code, send_code, sign_in

DEFAULTS = Settings()
CODE_SPACE = 10**6


def code_sign_in(client, phone: str, code: str, address: str):
    return client.post("/api/v1/auth/sign-in", json={"phone": phone, "code": code},
                       environ_base={"REMOTE_ADDR": address})


def refresh(client, tokens: dict):
    return client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


def link_code(client, tokens: dict, phone: str, address: str):
    return client.post("/api/v1/me/channels/phone", json={"phone": phone}, headers=bearer(tokens),
                       environ_base={"REMOTE_ADDR": address})


def texted_codes(twilio, e164: str) -> list[str]:
    return [re.search(r"\d{6}", body).group() for body in twilio.sms_to(e164) if "验证码" in body]


# --- the arithmetic ----------------------------------------------------------------------------------

def test_the_configured_budgets_put_a_six_digit_code_out_of_brute_force_reach():
    """The figures of the module docstring, from the shipped defaults: raising a budget must show up here."""
    assert resident_auth.CODE_TRIES == identities.CODE_TRIES == 5
    assert resident_auth.CODE_TTL == identities.CODE_TTL == timedelta(minutes=5)
    codes_an_hour = DEFAULTS.MOBILE_CODES_PER_PHONE_HOUR
    link_guesses_an_hour = DEFAULTS.MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR
    # The worst split of a phone's texts an hour between sign-in codes (k) and link codes (the rest).
    guesses_an_hour = max(k * resident_auth.CODE_TRIES
                          + min(link_guesses_an_hour, (codes_an_hour - k) * identities.CODE_TRIES)
                          for k in range(codes_an_hour + 1))
    assert (codes_an_hour, link_guesses_an_hour, guesses_an_hour) == (5, 10, 25)
    assert guesses_an_hour / CODE_SPACE <= 2.5e-5  # the chance of a right guess in an hour
    assert CODE_SPACE / guesses_an_hour / 24 / 365 > 4.5  # years to try every code once
    assert DEFAULTS.MOBILE_CODE_RESEND_SECONDS == 60
    assert (DEFAULTS.MOBILE_SIGN_IN_TRIES_PER_IP_HOUR, DEFAULTS.MOBILE_CODES_PER_IP_HOUR) == (50, 20)


# --- codes: lifetime, single use, tries --------------------------------------------------------------

PHONE, E164 = "13800138240", "+8613800138240"


def test_a_code_works_until_its_lifetime_is_over_and_not_after(client, app, session, recorders, monkeypatch):
    _, twilio = recorders
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    sent = send_code(client, PHONE)
    assert sent.get_json()["expires_in"] == resident_auth.CODE_TTL.total_seconds() == 300
    assert "5分钟内有效" in twilio.sms_to(E164)[-1]  # what the resident is told matches what the server holds
    db.session.commit()

    resident_auth.request_code(phone=PHONE, client_ip="10.24.0.1", now=utcnow() - resident_auth.CODE_TTL)
    assert error_code(code_sign_in(client, PHONE, last_code(app, E164), "10.24.0.2"), 401) == "code_expired"

    resident_auth.request_code(phone=PHONE, client_ip="10.24.0.1",
                               now=utcnow() - resident_auth.CODE_TTL + timedelta(minutes=1))
    assert code_sign_in(client, PHONE, last_code(app, E164), "10.24.0.2").status_code == 200


@pytest.mark.timeout(120)
def test_a_right_code_sent_many_times_at_once_signs_in_once(app, committed, recorders):
    _, twilio = recorders
    phones = [f"+86138001382{n:02d}" for n in range(4)]
    calls = []
    for p, phone in enumerate(phones):
        resident_auth.request_code(phone=phone, client_ip=f"10.24.1.{p}")
        code = texted_codes(twilio, phone)[-1]
        # As many as the code has tries: each is judged, and the code must still let only one through.
        calls += [lambda phone=phone, code=code, n=n, p=p: residents.sign_in_with_code(
            phone=phone, code=code, client_ip=f"10.24.2.{5 * p + n}").session_id for n in range(5)]

    outcomes = race(app, calls)

    for p in range(len(phones)):
        five = outcomes[5 * p:5 * p + 5]
        assert len([o for o in five if isinstance(o, int)]) == 1, five
        # The others are refused as used (or, for a try spent after the winner's, as a code with no try left).
        assert {o for o in five if not isinstance(o, int)} <= {"code_used", "code_locked"}, five


@pytest.mark.timeout(120)
def test_guesses_sent_all_at_once_get_five_tries_at_a_code_and_not_one_more(app, committed, recorders):
    """A thousand guesses in one burst must not all be judged before the first try is counted."""
    _, twilio = recorders
    phones = [f"+86138001383{n:02d}" for n in range(3)]
    calls, rights = [], []
    for p, phone in enumerate(phones):
        resident_auth.request_code(phone=phone, client_ip=f"10.24.3.{p}")
        rights.append(texted_codes(twilio, phone)[-1])
        guesses = [f"{(int(rights[-1]) + 1 + n) % CODE_SPACE:06d}" for n in range(10)]  # ten distinct wrong codes
        calls += [lambda phone=phone, guess=guess, n=n, p=p: residents.sign_in_with_code(
            phone=phone, code=guess, client_ip=f"10.24.4.{10 * p + n}") for n, guess in enumerate(guesses)]

    outcomes = race(app, calls)

    for p, phone in enumerate(phones):
        ten = outcomes[10 * p:10 * p + 10]
        assert sorted(ten) == ["code_locked"] * 5 + ["invalid_code"] * 5, ten
        # The right code comes too late: the code is dead.
        assert refusal(residents.sign_in_with_code, phone=phone, code=rights[p], client_ip="10.24.5.1") \
            == "code_locked"


@pytest.mark.timeout(120)
def test_guesses_at_a_phone_link_code_sent_all_at_once_get_five_tries_and_not_one_more(app, committed, recorders):
    """A right guess at a link code can merge the phone's account into the guesser's; the 10 guesses an hour of the
    phone's budget must not all land on one code, which would add 5 to the 25 guesses of the docstring's sum."""
    _, twilio = recorders
    victims = [f"+86139001384{n:02d}" for n in range(3)]
    calls = []
    for v, victim in enumerate(victims):
        attacker = ResidentFactory()
        db.session.commit()
        residents.request_phone_link(resident_id=attacker.id, phone=victim, client=f"10.24.6.{v}")
        code = texted_codes(twilio, victim)[-1]
        calls += [lambda rid=attacker.id, n=n, v=v, code=code: residents.confirm_phone_link(
            resident_id=rid, code=f"{(int(code) + 1 + n) % CODE_SPACE:06d}", client=f"10.24.7.{10 * v + n}").id
            for n in range(10)]

    outcomes = race(app, calls)

    for v in range(len(victims)):
        ten = outcomes[10 * v:10 * v + 10]
        assert sorted(ten) == ["no_pending_link"] * 5 + ["wrong_code"] * 5, ten


def test_one_address_gets_its_hourly_tries_across_all_phones_and_no_more(client, app, session):
    """Spraying one guess at each of many phones is bounded per address (the per-code limit never triggers)."""
    budget = DEFAULTS.MOBILE_SIGN_IN_TRIES_PER_IP_HOUR
    db.session.commit()
    answers = [code_sign_in(client, f"137{n:08d}", "123456", "10.24.8.8").status_code for n in range(budget)]
    assert set(answers) == {401}
    refused = code_sign_in(client, "13799999999", "123456", "10.24.8.8")
    assert error_code(refused, 429) == "rate_limited" and refused.get_json()["error"]["details"]["retry_after"] > 0
    assert code_sign_in(client, "13799999999", "123456", "10.24.8.9").status_code == 401  # other addresses go on


# --- SMS bombing ---------------------------------------------------------------------------------------

VICTIM, VICTIM_E164 = "13900139240", "+8613900139240"


@pytest.fixture
def attacker(client, app, session):
    """A resident signed in from an address of their own, able to ask for link codes to any phone."""
    return sign_in(client, app, "13700137240", ip="10.24.9.1")


def test_a_phone_is_texted_once_a_minute_whoever_asks_by_whichever_path(client, app, session, recorders, attacker):
    _, twilio = recorders
    assert send_code(client, VICTIM, ip="10.24.10.1").status_code == 202
    again = [send_code(client, VICTIM, ip="10.24.10.2"), link_code(client, attacker, VICTIM, "10.24.10.3")]
    for response in again:
        assert error_code(response, 429) == "rate_limited"
        assert 0 < response.get_json()["error"]["details"]["retry_after"] <= DEFAULTS.MOBILE_CODE_RESEND_SECONDS
    assert len(twilio.sms_to(VICTIM_E164)) == 1


def test_a_phone_is_texted_five_codes_an_hour_by_sign_in_and_linking_together(client, app, session, recorders,
                                                                              attacker, monkeypatch):
    _, twilio = recorders
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)  # the hourly budget alone
    statuses = []
    for n in range(8):  # a fresh address each time, alternating the two paths
        ask = send_code(client, VICTIM, ip=f"10.24.11.{n}") if n % 2 else link_code(client, attacker, VICTIM,
                                                                                       f"10.24.12.{n}")
        statuses.append(ask.status_code)
    assert statuses == [202] * 5 + [429] * 3
    assert len(twilio.sms_to(VICTIM_E164)) == DEFAULTS.MOBILE_CODES_PER_PHONE_HOUR == 5


def test_one_address_texts_at_most_twenty_codes_an_hour_to_any_phones(client, app, session, recorders, attacker):
    _, twilio = recorders
    budget = DEFAULTS.MOBILE_CODES_PER_IP_HOUR
    for n in range(budget - 1):
        assert send_code(client, f"136{n:08d}", ip="10.24.13.13").status_code == 202
    assert link_code(client, attacker, "13599999998", "10.24.13.13").status_code == 202  # the same budget
    assert error_code(send_code(client, "13599999999", ip="10.24.13.13"), 429) == "rate_limited"
    assert error_code(link_code(client, attacker, "13599999997", "10.24.13.13"), 429) == "rate_limited"
    assert twilio.sms_to("+8613599999999") == [] and twilio.sms_to("+8613599999997") == []


def test_an_address_over_its_budget_spends_nothing_of_a_phones_budget(client, app, session, recorders):
    """Refused for its address, a request must not still take the phone's resend interval and hourly texts: else one
    address, with its 20 codes spent, could keep every phone it names from getting a code (5 requests a phone)."""
    _, twilio = recorders
    for n in range(DEFAULTS.MOBILE_CODES_PER_IP_HOUR):
        assert send_code(client, f"136{n:08d}", ip="10.24.16.16").status_code == 202
    for _ in range(DEFAULTS.MOBILE_CODES_PER_PHONE_HOUR + 1):
        assert error_code(send_code(client, VICTIM, ip="10.24.16.16"), 429) == "rate_limited"

    assert send_code(client, VICTIM, ip="10.24.16.17").status_code == 202  # the phone's owner, at once
    assert len(twilio.sms_to(VICTIM_E164)) == 1


def test_an_address_over_its_tries_spends_nothing_of_a_phones_linking_budget(client, app, session, recorders,
                                                                            attacker, monkeypatch):
    _, twilio = recorders
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    assert link_code(client, attacker, VICTIM, "10.24.17.1").status_code == 202
    for n in range(DEFAULTS.MOBILE_SIGN_IN_TRIES_PER_IP_HOUR):  # the address's tries, spent on sign-in guesses
        code_sign_in(client, f"137{n:08d}", "123456", "10.24.17.17")
    for _ in range(DEFAULTS.MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR):
        guess = client.post("/api/v1/me/channels/phone/confirm", json={"code": "000000"}, headers=bearer(attacker),
                            environ_base={"REMOTE_ADDR": "10.24.17.17"})
        assert error_code(guess, 429) == "rate_limited"

    owner = sign_in(client, app, "13700137241", ip="10.24.17.2")  # the phone's owner, linking it to their account
    assert link_code(client, owner, VICTIM, "10.24.17.2").status_code == 202
    confirmed = client.post("/api/v1/me/channels/phone/confirm", json={"code": texted_codes(twilio, VICTIM_E164)[-1]},
                            headers=bearer(owner), environ_base={"REMOTE_ADDR": "10.24.17.2"})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)


# --- refresh tokens ----------------------------------------------------------------------------------

def refusal(call, **kwargs) -> str:
    with pytest.raises(DomainError) as caught:
        call(**kwargs)
    return caught.value.code


def alive(client, tokens: dict) -> bool:
    response = client.get("/api/v1/me", headers=bearer(tokens))
    if response.status_code == 200:
        return True
    assert error_code(response, 401) == "token_revoked"
    return False


def test_a_replayed_refresh_token_ends_every_token_of_its_sign_in_the_newest_included(client, app, session,
                                                                                      monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    generations = [sign_in(client, app, PHONE)]
    for _ in range(3):  # the app refreshes three times: four generations, the last one current
        response = refresh(client, generations[-1])
        assert response.status_code == 200, response.get_data(as_text=True)
        generations.append(response.get_json())
    other_device = sign_in(client, app, PHONE, ip="10.24.14.1")  # another sign-in of the same resident
    assert all(alive(client, tokens) for tokens in generations)

    stolen = generations[1]  # a thief replays a refresh token the app already used
    assert error_code(refresh(client, stolen), 401) == "refresh_token_reused"

    assert not any(alive(client, tokens) for tokens in generations)
    for tokens in generations:
        assert error_code(refresh(client, tokens), 401) == "token_revoked"
    assert alive(client, other_device)  # the family is the sign-in, not every device of the resident


def test_a_thief_who_refreshes_first_is_cut_off_when_the_owner_refreshes(client, app, session):
    owner = sign_in(client, app, PHONE)
    thief = refresh(client, owner).get_json()  # the thief's copy of the refresh token wins the race
    assert alive(client, thief)

    assert error_code(refresh(client, owner), 401) == "refresh_token_reused"  # the owner's app refreshes as usual

    assert not alive(client, thief)
    assert error_code(refresh(client, thief), 401) == "token_revoked"


@pytest.mark.timeout(120)
def test_a_refresh_token_presented_many_times_at_once_gives_one_pair_and_ends_the_sign_in(app, committed):
    sessions = []
    for _ in range(4):
        resident = ResidentFactory()
        db.session.commit()
        sessions.append(resident_auth.open_session(resident_id=resident.id, method="sms"))
    calls = [lambda token=tokens.refresh_token: residents.refresh(refresh_token=token)
             for tokens in sessions for _ in range(6)]

    outcomes = race(app, calls)

    for n, first in enumerate(sessions):
        six = outcomes[6 * n:6 * n + 6]
        winners = [o for o in six if isinstance(o, resident_auth.Tokens)]
        refused = [o for o in six if not isinstance(o, resident_auth.Tokens)]
        assert len(winners) == 1, six
        assert "refresh_token_reused" in refused and set(refused) <= {"refresh_token_reused", "token_revoked"}, six
        for token in (first.access_token, winners[0].access_token):
            assert refusal(residents.authenticate, access_token=token) == "token_revoked"
        assert refusal(residents.refresh, refresh_token=winners[0].refresh_token) == "token_revoked"


# --- signing out ---------------------------------------------------------------------------------------

def test_signing_out_ends_the_copies_of_its_access_and_refresh_tokens_at_once(client, app, session):
    first = sign_in(client, app, PHONE)
    current = refresh(client, first).get_json()
    copies = {"access": current["access_token"], "refresh": current["refresh_token"]}  # taken by a thief

    assert client.post("/api/v1/auth/sign-out", headers=bearer(current)).status_code == 200

    # Minutes before the access token's own expiry: the server refuses it now.
    assert error_code(client.get("/api/v1/me", headers=bearer(copies["access"])), 401) == "token_revoked"
    assert error_code(client.get("/api/v1/me", headers=bearer(first)), 401) == "token_revoked"
    assert error_code(client.post("/api/v1/auth/refresh", json={"refresh_token": copies["refresh"]}), 401) \
        == "token_revoked"
    assert error_code(client.post("/api/v1/auth/sign-out", headers=bearer(copies["access"])), 401) == "token_revoked"


def test_signing_out_everywhere_ends_a_thiefs_sign_in_on_a_device_the_owner_never_saw(client, app, session,
                                                                                    monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    thief = sign_in(client, app, PHONE, ip="10.24.15.1")  # a sign-in the owner does not know of
    thief = refresh(client, thief).get_json()
    owner = sign_in(client, app, PHONE, ip="10.24.15.2")

    ended = client.post("/api/v1/auth/sign-out-everywhere", headers=bearer(owner)).get_json()

    assert ended == {"sessions_ended": 2}
    assert not alive(client, thief) and not alive(client, owner)
    assert error_code(refresh(client, thief), 401) == "token_revoked"
