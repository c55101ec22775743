"""The mobile API's bearer-token authentication and its Idempotency-Key handling for writes."""
from __future__ import annotations

import json
import re
import secrets
from functools import wraps

from apiflask import HTTPTokenAuth
from flask import after_this_request, current_app, request

from app.api.v1.schemas import IdempotencyHeaders
from app.core import idempotency
from app.core.errors import Unauthorized, error_body
from app.services import residents
from app.services.residents import Principal

auth = HTTPTokenAuth(scheme="Bearer", description="An access token from /api/v1/auth (15 minutes).")


@auth.verify_token
def _verify(token: str | None) -> Principal:
    # Raises the specific reason (missing, expired, revoked...) in the common error body.
    return residents.authenticate(access_token=token)


@auth.error_processor
def _no_token(error):
    # Flask-HTTPAuth calls this only when no bearer token came at all (a bad one raised above).
    return error_body("missing_token", "请先登录"), error.status_code, {"WWW-Authenticate": "Bearer"}


def current() -> Principal:
    principal = auth.current_user
    if principal is None:  # only reachable if a route forgot auth_required
        raise Unauthorized("请先登录", code="missing_token")
    return principal


def client_ip() -> str:
    # remote_addr, never X-Forwarded-For as sent: a proxy in front must be trusted via ProxyFix.
    return request.remote_addr or "-"


# The secret a browser holds for its WeChat OAuth states (residents.wechat_authorize_url binds each state to it).
# HttpOnly: the H5 page's scripts never see it, so a state and code lifted from a URL or a log are not enough.
OAUTH_CLIENT_COOKIE = "linli_oauth_client"
_OAUTH_CLIENT_KEY = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def oauth_client_key() -> str | None:
    """This client's OAuth secret as its cookie presents it (None without one)."""
    key = request.cookies.get(OAUTH_CLIENT_COOKIE, "")
    return key if _OAUTH_CLIENT_KEY.fullmatch(key) else None


def issue_oauth_client_key() -> str:
    """This client's OAuth secret, kept (two tabs share it) or new; the answer (re)sets the cookie."""
    key = oauth_client_key() or secrets.token_urlsafe(32)

    @after_this_request
    def _set_cookie(response):
        response.set_cookie(OAUTH_CLIENT_COOKIE, key, path="/api/v1/", httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
        return response

    return key


def idempotent(bp):
    """Decorator factory: a write that replays its first answer for a repeated Idempotency-Key.

    Place it under `auth_required` (the key is scoped to the resident) and above input/output.
    """

    def decorator(view):
        @wraps(view)
        def guarded(*args, idempotency_headers: dict | None = None, **kwargs):
            key = (idempotency_headers or {}).get("idempotency_key")
            if not key:
                return view(*args, **kwargs)
            resident_id = current().resident_id
            digest = idempotency.fingerprint(request.method, request.path, _canonical_body())
            reserved = idempotency.reserve(resident_id=resident_id, key=key, fingerprint=digest)
            if isinstance(reserved, idempotency.Replay):
                replay = current_app.response_class(reserved.body, status=reserved.status,
                                                    mimetype="application/json")
                replay.headers["Idempotent-Replayed"] = "true"
                return replay
            try:
                response = current_app.make_response(view(*args, **kwargs))
            except BaseException:
                idempotency.release(record_id=reserved)
                raise
            if 200 <= response.status_code < 300:
                idempotency.complete(record_id=reserved, status=response.status_code,
                                     body=response.get_data(as_text=True))
            else:
                idempotency.release(record_id=reserved)
            return response

        return bp.input(IdempotencyHeaders, location="headers", arg_name="idempotency_headers")(guarded)

    return decorator


def _canonical_body() -> bytes:
    """The body as data, not bytes: key order, whitespace and a multipart boundary do not make a new request."""
    if request.is_json:
        data = request.get_json(silent=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if request.files or request.form:
        parts = [f"{k}={v}" for k, v in sorted(request.form.items(multi=True))]
        for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            content = upload.stream.read()
            upload.stream.seek(0)
            parts.append(f"{name}:{idempotency.fingerprint(content)}")
        return "\n".join(parts).encode()
    return request.get_data()
