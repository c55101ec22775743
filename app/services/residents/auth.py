"""Residents signing in to the app and H5 pages: SMS codes, WeChat OAuth, and the tokens that follow.

A sign-in opens a session (one device). The session's refresh tokens rotate on every use; presenting
one that was already used means it leaked, so the whole session is revoked. Access tokens are short
JWTs naming the session, checked against it on every request so sign-out takes effect at once.
Codes and refresh tokens are stored only as keyed hashes; a code is never logged or put in the outbox.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from flask import current_app
from sqlalchemy import select, update

from app.core.config import setting
from app.core.errors import DomainError, Unauthorized
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.core.secrets_at_rest import keyed_hash
from app.models import RefreshToken, ResidentSession, SignInCode
from app.models.base import utcnow
from app.services.residents import identities

log = logging.getLogger(__name__)

CODE_TTL = identities.CODE_TTL  # one code lifetime for signing in and for linking a phone
CODE_TRIES = 5
HOUR = 3600
DAY = 24 * HOUR
OAUTH_STATE_SECONDS = 600
_AUDIENCE = "linli-mobile"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(DomainError):
    status = 503
    code = "service_unavailable"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    resident_id: int
    session_id: int


@dataclass(frozen=True)
class Principal:
    """Who a valid access token speaks for."""

    resident_id: int
    session_id: int


# --- SMS codes -------------------------------------------------------------------------------------

def request_code(*, phone: str, client_ip: str, now: datetime | None = None) -> str:
    """Text a sign-in code to the phone; returns the E.164 number. Earlier unused codes stop working."""
    e164 = _phone(phone)
    limit_code_sends(phone=e164, client_ip=client_ip)
    now = now or utcnow()
    code = f"{secrets.randbelow(10**6):06d}"
    db.session.execute(update(SignInCode).where(SignInCode.phone == e164, SignInCode.used_at.is_(None))
                       .values(used_at=now))
    db.session.add(SignInCode(phone=e164, code_hash=_code_hash(e164, code), expires_at=now + CODE_TTL,
                              created_at=now))
    db.session.commit()
    try:
        identities.send_code_sms(e164, code, f"【邻里】您的登录验证码是{code}，5分钟内有效，请勿告诉他人。")
    except Exception as exc:  # noqa: BLE001 (any transport failure; the code itself is never logged)
        log.warning("sign-in code could not be sent: %s", type(exc).__name__)
        raise ServiceUnavailable("短信发送失败，请稍后再试", code="sms_unavailable") from None
    return e164


def sign_in_with_code(*, phone: str, code: str, client_ip: str, device: str = "",
                      now: datetime | None = None) -> Tokens:
    """Exchange a correct, fresh, unused code for tokens; each try counts, right or wrong.

    Wrong tries burn the code they were aimed at (CODE_TRIES), never the phone: a budget of tries per phone let
    anyone's junk guesses refuse its owner's next sign-in, even with a fresh code. A guesser needs new codes, which
    are limited per phone (limit_code_sends), so a phone takes at most CODE_TRIES x MOBILE_CODES_PER_PHONE_HOUR
    guesses an hour at its 10^6 codes; tries stay limited per address as well.
    """
    e164 = _phone(phone)
    _limit("try-ip", client_ip, setting("MOBILE_SIGN_IN_TRIES_PER_IP_HOUR"))
    now = now or utcnow()
    latest = db.session.scalar(select(SignInCode).where(SignInCode.phone == e164)
                               .order_by(SignInCode.id.desc()).limit(1))
    if latest is None:
        raise Unauthorized("请先获取验证码", code="no_code")
    if latest.used_at is not None:
        raise Unauthorized("验证码已使用，请重新获取", code="code_used")
    if latest.expires_at <= now:
        raise Unauthorized("验证码已过期，请重新获取", code="code_expired")
    # The try is spent in its own statement before comparing, so parallel guesses cannot share one.
    spent = db.session.execute(
        update(SignInCode).where(SignInCode.id == latest.id, SignInCode.attempts < CODE_TRIES,
                                 SignInCode.used_at.is_(None))
        .values(attempts=SignInCode.attempts + 1).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not spent:
        raise RateLimited("错误次数过多，请重新获取验证码", code="code_locked")
    if not hmac.compare_digest(latest.code_hash, _code_hash(e164, (code or "").strip())):
        db.session.refresh(latest)
        raise Unauthorized("验证码不正确", code="invalid_code",
                           details={"tries_left": max(CODE_TRIES - latest.attempts, 0)})
    won = db.session.execute(update(SignInCode).where(SignInCode.id == latest.id, SignInCode.used_at.is_(None))
                             .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not won:
        raise Unauthorized("验证码已使用，请重新获取", code="code_used")
    resident = identities.resident_for(channel="sms", address=e164)
    return open_session(resident_id=resident.id, method="sms", device=device, now=now)


# --- WeChat OAuth (H5) -----------------------------------------------------------------------------

def wechat_authorize_url(*, redirect_uri: str, scope: str, client_key: str) -> tuple[str, str]:
    """Where the H5 page sends the browser, and the state it must hand back with the code.

    The state is a random nonce kept OAUTH_STATE_SECONDS in Redis with the hash of `client_key`, a secret the
    asking client holds (the route keeps it in an HttpOnly cookie): a code and state carried off (a leaked redirect
    URL, a shared link) are useless to any other client, and the state is good for one use.
    """
    oauth = _oauth_client()
    state = secrets.token_urlsafe(24)
    _redis_call(lambda r: r.set(_state_key(state), _state_binding(client_key), ex=OAUTH_STATE_SECONDS))
    return oauth.authorize_url(redirect_uri=redirect_uri, scope=scope, state=state), state


def wechat_openid(*, code: str, state: str, client_key: str | None) -> str:
    """The openid behind an OAuth code the browser brought back with a fresh state minted for this client."""
    from integrations.wechat_oauth import WeChatOAuthError

    _consume_state(state, client_key)
    try:
        return _oauth_client().exchange(code).openid
    except WeChatOAuthError as exc:
        if exc.errcode is None:
            raise ServiceUnavailable("微信暂时无法访问，请稍后再试", code="wechat_unavailable") from None
        raise Unauthorized("微信授权无效，请重新进入页面", code="invalid_oauth_code",
                           details={"errcode": exc.errcode}) from None


def sign_in_with_wechat(*, code: str, state: str, client_key: str | None, device: str = "",
                        now: datetime | None = None) -> Tokens:
    """The resident behind the openid (the same one their WeChat messages reach) gets a session."""
    resident = identities.resident_for(channel="wechat",
                                       address=wechat_openid(code=code, state=state, client_key=client_key))
    return open_session(resident_id=resident.id, method="wechat", device=device, now=now)


def _oauth_client():
    from integrations.wechat_oauth import WeChatOAuthClient, oauth_api_base

    cfg = current_app.config
    if not (cfg["WECHAT_APP_ID"] and cfg["WECHAT_SECRET"]):
        raise ServiceUnavailable("微信登录未配置", code="wechat_unavailable")
    return WeChatOAuthClient(cfg["WECHAT_APP_ID"], cfg["WECHAT_SECRET"], oauth_api_base(cfg["WECHAT_API_BASE"]))


def _consume_state(state: str, client_key: str | None) -> None:
    def take(redis):
        # GET and DEL in one MULTI (GETDEL needs Redis 6.2): of two uses at once, one gets the state, the other nothing.
        pipe = redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        return pipe.execute()[0]

    key = _state_key(state or "")
    # Spent by its first presentation, whoever makes it and however it ends: a state is never good twice.
    bound_to = _redis_call(take)
    if bound_to is None or not client_key \
            or not hmac.compare_digest(bound_to.decode(), _state_binding(client_key)):
        raise Unauthorized("授权已过期，请重新进入页面", code="invalid_oauth_state")


def _state_key(state: str) -> str:
    return f"linli:oauth-state:{keyed_hash(f'oauth-state:{state}')[:32]}"


def _state_binding(client_key: str) -> str:
    return keyed_hash(f"oauth-client:{client_key}")


# --- sessions and tokens ---------------------------------------------------------------------------

def open_session(*, resident_id: int, method: str, device: str = "", now: datetime | None = None) -> Tokens:
    now = now or utcnow()
    session = ResidentSession(resident_id=resident_id, method=method, device=(device or "")[:100],
                              created_at=now, last_used_at=now)
    db.session.add(session)
    db.session.flush()
    refresh = _stage_refresh_token(session.id, now)
    db.session.commit()
    return Tokens(access_token=_access_token(resident_id, session.id, now), refresh_token=refresh,
                  expires_in=_access_seconds(), resident_id=resident_id, session_id=session.id)


def refresh(*, refresh_token: str, now: datetime | None = None) -> Tokens:
    """Rotate: the presented token is spent and a new pair issued; a spent token revokes its session."""
    now = now or utcnow()
    row = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == keyed_hash(refresh_token or "")))
    if row is None:
        raise Unauthorized("登录已失效，请重新登录", code="invalid_refresh_token")
    session = db.session.get(ResidentSession, row.session_id)
    if session.revoked_at is not None:
        raise Unauthorized("登录已失效，请重新登录", code="token_revoked")
    if row.expires_at <= now:
        raise Unauthorized("登录已过期，请重新登录", code="refresh_token_expired")
    won = db.session.execute(update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
                             .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if not won:
        # Used before: either the client and a thief both hold it, or a retry lost the race. Either way
        # nobody can tell which holder is genuine, so the session ends and the resident signs in again.
        db.session.rollback()
        _revoke(session_ids=[session.id], reason="reuse", now=now)
        log.warning("refresh token reuse; session %s revoked", session.id)
        raise Unauthorized("检测到登录凭证被重复使用，请重新登录", code="refresh_token_reused")
    session.last_used_at = now
    new_refresh = _stage_refresh_token(session.id, now)
    db.session.commit()
    return Tokens(access_token=_access_token(session.resident_id, session.id, now), refresh_token=new_refresh,
                  expires_in=_access_seconds(), resident_id=session.resident_id, session_id=session.id)


def authenticate(*, access_token: str | None, now: datetime | None = None) -> Principal:
    """The resident and session of a valid access token whose session is still signed in."""
    if not access_token:
        raise Unauthorized("请先登录", code="missing_token")
    now = now or utcnow()
    try:
        claims = jwt.decode(access_token, _signing_key(), algorithms=["HS256"], audience=_AUDIENCE,
                            options={"require": ["exp", "sub", "sid"], "verify_iat": False})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("登录已过期", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("登录凭证无效", code="invalid_token") from None
    if claims["exp"] <= now.timestamp():  # `now` may be a test's clock rather than the wall clock
        raise Unauthorized("登录已过期", code="token_expired")
    session = db.session.get(ResidentSession, int(claims["sid"]))
    if session is None or session.revoked_at is not None or str(session.resident_id) != claims["sub"]:
        raise Unauthorized("登录已失效，请重新登录", code="token_revoked")
    return Principal(resident_id=session.resident_id, session_id=session.id)


def sign_out(*, session_id: int, now: datetime | None = None) -> None:
    _revoke(session_ids=[session_id], reason="sign_out", now=now or utcnow())


def sign_out_everywhere(*, resident_id: int, now: datetime | None = None) -> int:
    ids = list(db.session.scalars(select(ResidentSession.id).where(ResidentSession.resident_id == resident_id,
                                                                   ResidentSession.revoked_at.is_(None))))
    _revoke(session_ids=ids, reason="everywhere", now=now or utcnow())
    return len(ids)


def _revoke(*, session_ids: list[int], reason: str, now: datetime) -> None:
    if session_ids:
        db.session.execute(update(ResidentSession).where(ResidentSession.id.in_(session_ids),
                                                         ResidentSession.revoked_at.is_(None))
                           .values(revoked_at=now, revoke_reason=reason).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.expire_all()


def _stage_refresh_token(session_id: int, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    days = setting("MOBILE_REFRESH_TOKEN_DAYS")
    db.session.add(RefreshToken(session_id=session_id, token_hash=keyed_hash(token), created_at=now,
                                expires_at=now + timedelta(days=days)))
    return token


def _access_token(resident_id: int, session_id: int, now: datetime) -> str:
    claims = {"sub": str(resident_id), "sid": session_id, "aud": _AUDIENCE, "iat": int(now.timestamp()),
              "exp": int(now.timestamp()) + _access_seconds()}
    return jwt.encode(claims, _signing_key(), algorithm="HS256")


def _access_seconds() -> int:
    return setting("MOBILE_ACCESS_TOKEN_SECONDS")


def _signing_key() -> str:
    # Derived, so an access token can never be mistaken for another signed value of the app.
    return keyed_hash("linli:mobile-access-token:v1")


# --- helpers ---------------------------------------------------------------------------------------

def _phone(raw: str) -> str:
    return identities.code_phone(raw)  # the numbers codes may be texted to, for signing in as for linking


def _code_hash(phone: str, code: str) -> str:
    return keyed_hash(f"sign-in:{phone}:{code}")


def limit_code_sends(*, phone: str, client_ip: str) -> None:
    """Codes texted: one per resend interval per phone, an hourly budget per phone and per address, and a daily
    budget per phone (an hourly window alone let one phone be texted 5 codes every hour, 120 a day)."""
    cfg = current_app.config
    # The asker's budget first: a request refused for its address must spend nothing of the phone's, or one address
    # past its budget could still keep any phone it names from getting a code.
    _limit("code-ip", client_ip, cfg["MOBILE_CODES_PER_IP_HOUR"])
    _throttle_resend(phone)
    _limit("code-phone", phone, cfg["MOBILE_CODES_PER_PHONE_HOUR"])
    _limit("code-phone-day", phone, cfg["MOBILE_CODES_PER_PHONE_DAY"], window=DAY)


def limit_code_tries(*, phone: str, client_ip: str) -> None:
    """Code checks: an hourly budget per phone (across codes, so new codes buy no extra guesses) and per address.

    Not used by sign-in (see sign_in_with_code: a phone's budget there let strangers lock its owner out)."""
    cfg = current_app.config
    _limit("try-ip", client_ip, cfg["MOBILE_SIGN_IN_TRIES_PER_IP_HOUR"])  # first, as in limit_code_sends
    _limit("try-phone", phone, cfg["MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR"])


def _throttle_resend(phone: str) -> None:
    seconds = setting("MOBILE_CODE_RESEND_SECONDS")
    key = f"linli:mobile:resend:{keyed_hash(phone)[:32]}"
    if seconds > 0 and not _redis_call(lambda r: r.set(key, 1, ex=seconds, nx=True)):
        retry = _redis_call(lambda r: r.ttl(key))
        raise RateLimited("请稍后再获取验证码", details={"retry_after": max(int(retry or seconds), 1)})


def _limit(name: str, subject: str, per_window: int, *, window: int = HOUR) -> None:
    """A fixed window (an hour unless told) per (name, subject); subjects are hashed so Redis holds no phone
    numbers."""
    key = f"linli:mobile:{name}:{keyed_hash(subject or '-')[:32]}"

    def hit(redis):
        pipe = redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=window, nx=True)  # the window starts with the first hit and never extends
        pipe.incr(key)
        pipe.ttl(key)
        return pipe.execute()

    _, count, ttl = _redis_call(hit)
    if count > int(per_window):
        raise RateLimited("操作太频繁，请稍后再试", details={"retry_after": max(int(ttl), 1)})


def _redis_call(action):
    # Fail closed: without the counters, codes could be sprayed (SMS cost) or guessed without a limit.
    try:
        return action(get_redis())
    except Exception as exc:  # noqa: BLE001 (any Redis trouble)
        log.warning("sign-in rate limiter unavailable: %s", exc)
        raise ServiceUnavailable("服务繁忙，请稍后再试") from None
