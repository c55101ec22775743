"""Signing in (SMS code, WeChat OAuth), refreshing tokens, signing out.

These writes take no Idempotency-Key: they are keyed to no resident yet, and a stored answer would be
a copy of the tokens at rest. A code is single use and a refresh token rotates, so a retry is safe.
"""
from __future__ import annotations

from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, client_ip, current, issue_oauth_client_key, oauth_client_key
from app.api.v1.schemas import (
    CodeIn,
    CodeSentOut,
    RefreshIn,
    SignedOutOut,
    SignInIn,
    TokensOut,
    WeChatCodeIn,
    WeChatUrlOut,
    WeChatUrlQuery,
    mask_phone,
)
from app.services import residents

TAG = "Mobile: sign-in"


@bp.post("/auth/sms-code")
@bp.input(CodeIn, arg_name="body")
@bp.output(CodeSentOut, status_code=202)
@bp.doc(summary="Text a 6-digit sign-in code (5 minutes, single use)", tags=[TAG], responses=[422, 429, 503])
def send_code(body):
    phone = residents.request_code(phone=body["phone"], client_ip=client_ip())
    return {"phone": mask_phone(phone), "expires_in": int(residents.CODE_TTL.total_seconds())}


@bp.post("/auth/sign-in")
@bp.input(SignInIn, arg_name="body")
@bp.output(TokensOut)
@bp.doc(summary="Sign in with the phone and its code (5 tries per code)", tags=[TAG], responses=[401, 422, 429])
def sign_in(body):
    return residents.sign_in_with_code(client_ip=client_ip(), **body)


@bp.get("/auth/wechat/authorize-url")
@bp.input(WeChatUrlQuery, location="query", arg_name="query")
@bp.output(WeChatUrlOut)
@bp.doc(summary="The WeChat OAuth page to send the H5 browser to",
        description="Sets the HttpOnly cookie `linli_oauth_client`: the state works once, and only with the code "
                    "posted by the client holding that cookie.", tags=[TAG], responses=[503])
def wechat_url(query):
    url, state = residents.wechat_authorize_url(client_key=issue_oauth_client_key(), **query)
    return {"url": url, "state": state}


@bp.post("/auth/wechat")
@bp.input(WeChatCodeIn, arg_name="body")
@bp.output(TokensOut)
@bp.doc(summary="Sign in with the code WeChat's OAuth redirect brought back", tags=[TAG], responses=[401, 503])
def wechat_sign_in(body):
    return residents.sign_in_with_wechat(client_key=oauth_client_key(), **body)


@bp.post("/auth/refresh")
@bp.input(RefreshIn, arg_name="body")
@bp.output(TokensOut)
@bp.doc(summary="Exchange a refresh token for a new pair (a reused one ends the session)", tags=[TAG],
        responses=[401])
def refresh(body):
    return residents.refresh(refresh_token=body["refresh_token"])


@bp.post("/auth/sign-out")
@bp.auth_required(auth)
@bp.output(SignedOutOut)
@bp.doc(summary="End this device's session", tags=[TAG])
def sign_out():
    residents.sign_out(session_id=current().session_id)
    return {"sessions_ended": 1}


@bp.post("/auth/sign-out-everywhere")
@bp.auth_required(auth)
@bp.output(SignedOutOut)
@bp.doc(summary="End every session of the resident, on every device", tags=[TAG])
def sign_out_everywhere():
    return {"sessions_ended": residents.sign_out_everywhere(resident_id=current().resident_id)}
