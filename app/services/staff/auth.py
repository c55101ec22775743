"""Staff sign-in with failures budgeted per name and address, the console's server-side sessions, and the on-duty
switch round-robin relies on."""
from __future__ import annotations

import hmac
import logging
import secrets

from flask import current_app
from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.core.errors import DomainError, Forbidden, NotFound, Unauthorized
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.core.secrets_at_rest import keyed_hash
from app.models import Staff, StaffSession
from app.models.base import utcnow

log = logging.getLogger(__name__)

# Why budgets rather than locking the account: a lock after 5 failures let anyone who knew a username lock its
# owner out, and only real names were ever locked, which told them apart. Failures now count per (name, address)
# and per name, for names that do not exist too, so every answer is the same whichever name is typed:
# one address gets 5 failures at a name per 15 minutes; all addresses together get 50 per name per hour, so an
# account takes at most 50 guesses an hour however many addresses guess, and shutting its owner out takes at
# least 10 addresses and lasts at most the hour.
FAILURES_PER_ADDRESS = 5
ADDRESS_WINDOW_SECONDS = 15 * 60
FAILURES_PER_NAME = 50
NAME_WINDOW_SECONDS = 60 * 60
# Checked when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("linli-no-such-user")

# One try reserved at (name, address) and at the name in one step, so parallel guesses cannot all pass a check
# made before any of them is counted. A refused try is not counted: hammering a refused pair spends nothing of the
# name's budget. Each window starts with its first failure and never extends.
_RESERVE_TRY = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1])
   or tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], 0, 'EX', ARGV[2], 'NX')
redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], 0, 'EX', ARGV[4], 'NX')
redis.call('INCR', KEYS[2])
return 1
"""
# A right password: the address's failures at the name are forgiven, and the reserved try was no failure.
_RELEASE_TRY = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
return 1
"""


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"


def authenticate(*, username: str | None, password: str | None, client_ip: str | None = None) -> Staff:
    """The active staff member with these credentials. Unauthorized otherwise, or TooManyAttempts while this name's
    failures from this address, or from everywhere, are used up; the same answers for names that do not exist."""
    name = (username or "").strip()
    keys = _budget_keys(name, client_ip or "-")
    if not _on_budget(lambda redis: redis.register_script(_RESERVE_TRY)(
            keys=keys, args=[FAILURES_PER_ADDRESS, ADDRESS_WINDOW_SECONDS, FAILURES_PER_NAME, NAME_WINDOW_SECONDS])):
        # Refused before any password is checked, so the budget bounds the guesses, right ones included.
        raise TooManyAttempts("登录失败次数过多，请稍后再试")
    staff = db.session.scalar(select(Staff).where(Staff.username == name))
    known = staff is not None and staff.active
    if not check_password_hash(staff.password_hash if known else _DUMMY_HASH, password or "") or not known:
        raise Unauthorized("用户名或密码错误", code="invalid_credentials")
    _on_budget(lambda redis: redis.register_script(_RELEASE_TRY)(keys=keys))
    return staff


def _budget_keys(name: str, client_ip: str) -> list[str]:
    # Hashed: Redis holds neither usernames nor addresses.
    return [f"linli:staff-login:pair:{keyed_hash(f'{name}|{client_ip}')[:32]}",
            f"linli:staff-login:name:{keyed_hash(name)[:32]}"]


def _on_budget(action):
    """The budgets' answer, or "go on" while Redis is unreachable.

    Open, not closed: staff must be able to sign in to answer help alerts while Redis is down, and the login's own
    per-address rate limit (console/auth.py, kept in memory by each process during the outage) still bounds guessing.
    """
    try:
        return action(get_redis())
    except Exception as exc:  # noqa: BLE001 (any Redis trouble)
        log.warning("staff sign-in budgets unavailable, relying on the login rate limit: %s", type(exc).__name__)
        return 1


# --- console sessions ------------------------------------------------------------------------------

def open_session(*, staff: Staff) -> str:
    """A new console session of this staff member: the token for their cookie (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Sessions nobody logged out of (a browser closed) go once they are past their lifetime anyway.
    db.session.execute(delete(StaffSession).where(StaffSession.staff_id == staff.id,
                                                  StaffSession.created_at <= now - _session_lifetime()))
    db.session.add(StaffSession(staff_id=staff.id, token_hash=_token_hash(token), password_stamp=_password_stamp(staff),
                                created_at=now))
    db.session.commit()
    return token


def close_session(*, token: str | None) -> None:
    """Logout: the session ends on the server, so every copy of its cookie stops working with it."""
    if token:
        db.session.execute(delete(StaffSession).where(StaffSession.token_hash == _token_hash(token)))
        db.session.commit()


def load_staff(staff_id: str | int, session_token: str | None = None) -> Staff | None:
    """Flask-Login's user loader: the staff member of an open console session (not logged out, within the cookie's
    lifetime, opened with the account's current password), while the account is active."""
    try:
        staff_id = int(staff_id)
    except (TypeError, ValueError):
        return None
    if not session_token:
        return None
    found = db.session.execute(
        select(Staff, StaffSession.password_stamp).join(StaffSession, StaffSession.staff_id == Staff.id)
        .where(Staff.id == staff_id, StaffSession.token_hash == _token_hash(session_token),
               StaffSession.created_at > utcnow() - _session_lifetime())
    ).first()
    if found is None:
        return None
    staff, stamp = found
    # A new password (or a deactivated account) ends every session at once, however it was changed.
    if not staff.active or not hmac.compare_digest(stamp, _password_stamp(staff)):
        return None
    return staff


def _token_hash(token: str) -> str:
    return keyed_hash(f"staff-session:{token}")


def _password_stamp(staff: Staff) -> str:
    return keyed_hash(f"staff-session-password:{staff.password_hash}")


def _session_lifetime():
    # The signed cookie's own limit (Flask's PERMANENT_SESSION_LIFETIME, 31 days): the server holds to it as well.
    return current_app.permanent_session_lifetime


# --- duty ------------------------------------------------------------------------------------------

def set_on_duty(*, actor: Staff, staff_id: int, on_duty: bool) -> Staff:
    """Staff switch themselves; a team lead (admin) switches anyone of the street."""
    staff = db.session.get(Staff, staff_id)
    if staff is None or staff.street_id != actor.street_id:
        raise NotFound("没有这位工作人员")
    if staff.id != actor.id and actor.role != "admin":
        raise Forbidden("只有组长可以更改他人的值班状态")
    staff.on_duty = bool(on_duty)
    db.session.commit()
    return staff
