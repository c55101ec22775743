"""Mobile sign-in: SMS codes (expiry, single use, 5 tries, rate limits), WeChat OAuth against the stub,
refresh rotation with reuse detection, and signing out."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.extensions import db
from app.models import ChannelIdentity, OutboundMessage, RefreshToken, ResidentSession, SignInCode
from app.models.base import utcnow
from app.services.residents import auth as resident_auth
from tests.factories import ResidentFactory
from tests.helpers.mobile import bearer, error_code, last_code, send_code, sign_in

PHONE = "13800138000"
E164 = "+8613800138000"


def _sign_in(client, code, phone=PHONE, ip="10.0.0.1"):
    return client.post("/api/v1/auth/sign-in", json={"phone": phone, "code": code}, environ_base={"REMOTE_ADDR": ip})


# --- SMS codes -------------------------------------------------------------------------------------

def test_a_code_signs_in_the_resident_who_already_has_this_phone(client, app, session):
    known_id = ResidentFactory(phone=E164, name="李阿姨").id
    tokens = sign_in(client, app, PHONE)
    assert tokens["resident_id"] == known_id and tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    me = client.get("/api/v1/me", headers=bearer(tokens)).get_json()
    assert me["name"] == "李阿姨" and {"channel": "sms", "linked": True, "address": "+86138****8000"} in me["channels"]


def test_codes_are_stored_hashed_and_the_sms_is_the_only_place_the_code_appears(client, app, session):
    assert send_code(client, PHONE).status_code == 202
    code = last_code(app, E164)
    row = session.query(SignInCode).filter_by(phone=E164).one()
    assert code not in row.code_hash and len(row.code_hash) == 64
    # Sent directly, not through the outbox: outbox rows are shown to staff and in the notifications list.
    assert all(code not in m.body for m in session.query(OutboundMessage))


def test_an_expired_code_is_refused(client, app, session):
    resident_auth.request_code(phone=PHONE, client_ip="10.0.0.9", now=utcnow() - timedelta(minutes=6))
    db.session.commit()
    assert error_code(_sign_in(client, last_code(app, E164)), 401) == "code_expired"


def test_a_code_works_once(client, app, session):
    tokens = sign_in(client, app, PHONE)
    assert tokens["access_token"]
    assert error_code(_sign_in(client, last_code(app, E164)), 401) == "code_used"


def test_a_new_code_replaces_the_previous_one(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    send_code(client, PHONE)
    first = last_code(app, E164)
    send_code(client, PHONE)
    second = last_code(app, E164)
    if first != second:
        assert error_code(_sign_in(client, first), 401) == "invalid_code"
    assert _sign_in(client, second).status_code == 200


def test_five_wrong_tries_lock_the_code_even_for_the_right_answer(client, app, session):
    send_code(client, PHONE)
    right = last_code(app, E164)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    left = [_sign_in(client, wrong).get_json()["error"]["details"]["tries_left"] for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    assert error_code(_sign_in(client, right), 429) == "code_locked"


def test_wrong_tries_burn_codes_never_the_phone(client, app, session, monkeypatch):
    # A phone's guesses are bounded by its codes (5 tries each, MOBILE_CODES_PER_PHONE_HOUR of them), so junk tries
    # never refuse its owner a fresh code (tests/security/test_sign_in_abuse.py).
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    monkeypatch.setitem(app.config, "MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR", 3)
    for _ in range(3):
        send_code(client, PHONE)
        assert error_code(_sign_in(client, "000000" if last_code(app, E164) != "000000" else "111111"), 401)
    send_code(client, PHONE)
    assert _sign_in(client, last_code(app, E164)).status_code == 200


def test_sign_in_tries_are_limited_per_address(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_SIGN_IN_TRIES_PER_IP_HOUR", 2)
    for n in range(2):
        _sign_in(client, "123456", phone=f"1390000000{n}", ip="10.9.9.9")
    response = _sign_in(client, "123456", phone="13900000009", ip="10.9.9.9")
    assert error_code(response, 429) == "rate_limited"
    assert response.get_json()["error"]["details"]["retry_after"] > 0
    assert _sign_in(client, "123456", phone="13900000009", ip="10.9.9.8").status_code == 401  # another address


def test_codes_sent_are_limited_per_phone_interval_hour_and_per_address(client, app, session, monkeypatch):
    assert send_code(client, PHONE).status_code == 202
    assert error_code(send_code(client, PHONE), 429) == "rate_limited"  # within the resend interval
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    monkeypatch.setitem(app.config, "MOBILE_CODES_PER_PHONE_HOUR", 2)
    assert send_code(client, PHONE).status_code == 202
    assert error_code(send_code(client, PHONE), 429) == "rate_limited"
    monkeypatch.setitem(app.config, "MOBILE_CODES_PER_IP_HOUR", 3)
    sent = [send_code(client, f"1370000000{n}", ip="10.7.7.7").status_code for n in range(4)]
    assert sent == [202, 202, 202, 429]


def test_a_malformed_phone_is_a_validation_error(client, session):
    assert error_code(send_code(client, "12345"), 422) == "bad_phone"
    assert error_code(client.post("/api/v1/auth/sms-code", json={}), 422) == "validation_error"


# --- refresh tokens --------------------------------------------------------------------------------

def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_session(client, app, session):
    first = sign_in(client, app, PHONE)
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200
    stored = {t.token_hash for t in session.query(RefreshToken)}
    assert first["refresh_token"] not in stored and second["refresh_token"] not in stored  # hashed at rest

    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert error_code(reused, 401) == "refresh_token_reused"
    # The thief's copy and the genuine client's newest tokens are all dead now.
    assert error_code(client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}),
                      401) == "token_revoked"
    assert error_code(client.get("/api/v1/me", headers=bearer(second)), 401) == "token_revoked"
    assert session.query(ResidentSession).one().revoke_reason == "reuse"


def test_reuse_revokes_only_that_session(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    phone_a, tablet = sign_in(client, app, PHONE), sign_in(client, app, PHONE)
    client.post("/api/v1/auth/refresh", json={"refresh_token": phone_a["refresh_token"]})
    client.post("/api/v1/auth/refresh", json={"refresh_token": phone_a["refresh_token"]})
    assert client.get("/api/v1/me", headers=bearer(tablet)).status_code == 200


def test_an_unknown_or_expired_refresh_token_is_refused(client, app, session):
    assert error_code(client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"}), 401) \
        == "invalid_refresh_token"
    resident = ResidentFactory()
    old = resident_auth.open_session(resident_id=resident.id, method="sms", now=utcnow() - timedelta(days=31))
    assert error_code(client.post("/api/v1/auth/refresh", json={"refresh_token": old.refresh_token}), 401) \
        == "refresh_token_expired"


def test_an_access_token_expires_after_15_minutes(client, session):
    resident = ResidentFactory()
    stale = resident_auth.open_session(resident_id=resident.id, method="sms", now=utcnow() - timedelta(minutes=16))
    fresh = resident_auth.open_session(resident_id=resident.id, method="sms", now=utcnow() - timedelta(minutes=14))
    assert error_code(client.get("/api/v1/me", headers=bearer(stale.access_token)), 401) == "token_expired"
    assert client.get("/api/v1/me", headers=bearer(fresh.access_token)).status_code == 200


def test_a_forged_token_is_refused(client, session):
    resident = ResidentFactory()
    tokens = resident_auth.open_session(resident_id=resident.id, method="sms")
    head, claims, signature = tokens.access_token.split(".")
    forged = ".".join([head, claims, signature[::-1]])
    assert error_code(client.get("/api/v1/me", headers=bearer(forged)), 401) == "invalid_token"
    assert error_code(client.get("/api/v1/me"), 401) == "missing_token"


# --- signing out -----------------------------------------------------------------------------------

def test_sign_out_ends_this_session_and_sign_out_everywhere_ends_all(client, app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    a, b, c = (sign_in(client, app, PHONE) for _ in range(3))
    assert client.post("/api/v1/auth/sign-out", headers=bearer(a)).get_json() == {"sessions_ended": 1}
    assert error_code(client.get("/api/v1/me", headers=bearer(a)), 401) == "token_revoked"
    assert error_code(client.post("/api/v1/auth/refresh", json={"refresh_token": a["refresh_token"]}), 401) \
        == "token_revoked"
    assert client.get("/api/v1/me", headers=bearer(b)).status_code == 200
    assert client.post("/api/v1/auth/sign-out-everywhere", headers=bearer(b)).get_json() == {"sessions_ended": 2}
    for tokens in (b, c):
        assert error_code(client.get("/api/v1/me", headers=bearer(tokens)), 401) == "token_revoked"


# --- WeChat OAuth ----------------------------------------------------------------------------------

@pytest.fixture
def wechat_oauth(app, monkeypatch, wechat_stub):
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", wechat_stub.app_id)
    monkeypatch.setitem(app.config, "WECHAT_SECRET", wechat_stub.secret)
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", wechat_stub.api_base)
    return wechat_stub


def _state(client, scope="snsapi_base"):
    body = client.get("/api/v1/auth/wechat/authorize-url",
                      query_string={"redirect_uri": "https://h5.linli.test/cb", "scope": scope}).get_json()
    assert f"scope={scope}" in body["url"] and body["url"].endswith("#wechat_redirect")
    return body["state"]


def test_wechat_oauth_signs_in_the_resident_behind_the_openid(client, session, wechat_oauth):
    chatter_id = ResidentFactory(name="微信居民").id
    session.add(ChannelIdentity(resident_id=chatter_id, channel="wechat", external_id="o-chatter"))
    session.commit()
    for scope in ("snsapi_base", "snsapi_userinfo"):
        code = wechat_oauth.issue_oauth_code("o-chatter", scope=scope)
        tokens = client.post("/api/v1/auth/wechat", json={"code": code, "state": _state(client, scope)}).get_json()
        assert tokens["resident_id"] == chatter_id
    # WeChat codes are single use; the stub answers 40163 like WeChat.
    response = client.post("/api/v1/auth/wechat", json={"code": code, "state": _state(client)})
    assert error_code(response, 401) == "invalid_oauth_code"


def test_wechat_oauth_refuses_a_state_it_did_not_issue(client, session, wechat_oauth):
    code = wechat_oauth.issue_oauth_code("o-x")
    response = client.post("/api/v1/auth/wechat", json={"code": code, "state": "forged"})
    assert error_code(response, 401) == "invalid_oauth_state"


def test_linking_wechat_after_a_phone_sign_in_makes_one_resident(client, app, session, wechat_oauth):
    wechat_first = client.post("/api/v1/auth/wechat", json={
        "code": wechat_oauth.issue_oauth_code("o-link"), "state": _state(client)}).get_json()
    by_phone = sign_in(client, app, PHONE)
    assert by_phone["resident_id"] != wechat_first["resident_id"]
    response = client.post("/api/v1/me/channels/wechat", headers=bearer(by_phone), json={
        "code": wechat_oauth.issue_oauth_code("o-link"), "state": _state(client)})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert all(ch["linked"] for ch in response.get_json()["channels"])
    again = client.post("/api/v1/auth/wechat", json={
        "code": wechat_oauth.issue_oauth_code("o-link"), "state": _state(client)}).get_json()
    assert again["resident_id"] == by_phone["resident_id"]


def test_without_wechat_credentials_oauth_is_unavailable(client, session, monkeypatch, app):
    monkeypatch.setitem(app.config, "WECHAT_APP_ID", "")
    response = client.get("/api/v1/auth/wechat/authorize-url", query_string={"redirect_uri": "https://x/cb"})
    assert error_code(response, 503) == "wechat_unavailable"
