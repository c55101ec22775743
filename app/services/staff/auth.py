"""Staff sign-in with lockout after repeated failures, and the on-duty switch round-robin relies on."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.core.errors import DomainError, Forbidden, NotFound, Unauthorized
from app.core.extensions import db
from app.models import Staff
from app.models.base import utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
# Checked when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("linli-no-such-user")


class AccountLocked(DomainError):
    status = 423
    code = "account_locked"


def authenticate(*, username: str, password: str, now: datetime | None = None) -> Staff:
    """The staff member with these credentials; Unauthorized or AccountLocked otherwise."""
    now = now or utcnow()
    staff = db.session.scalar(select(Staff).where(Staff.username == (username or "").strip()))
    if staff is None or not staff.active:
        check_password_hash(_DUMMY_HASH, password or "")
        raise Unauthorized("用户名或密码错误", code="invalid_credentials")
    if staff.locked_until and staff.locked_until > now:
        # Refused before the password is checked: a locked account cannot be probed further.
        raise AccountLocked(_locked_message(staff.locked_until, now))
    if not check_password_hash(staff.password_hash, password or ""):
        _record_failure(staff, now)
        if staff.locked_until and staff.locked_until > now:
            raise AccountLocked(_locked_message(staff.locked_until, now))
        raise Unauthorized("用户名或密码错误", code="invalid_credentials")
    staff.failed_logins, staff.locked_until = 0, None
    db.session.commit()
    return staff


def _record_failure(staff: Staff, now: datetime) -> None:
    # Incremented in SQL so concurrent wrong guesses all count.
    count = db.session.execute(
        update(Staff).where(Staff.id == staff.id).values(failed_logins=Staff.failed_logins + 1)
        .returning(Staff.failed_logins)
    ).scalar_one()
    if count >= MAX_FAILURES:
        db.session.execute(update(Staff).where(Staff.id == staff.id).values(failed_logins=0, locked_until=now + LOCKOUT))
    db.session.commit()
    db.session.refresh(staff)


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() // 60) + 1)
    return f"连续输错密码，账号已锁定，请约{minutes}分钟后再试"


def load_staff(staff_id: str | int) -> Staff | None:
    """Flask-Login's user loader: only active accounts keep their session."""
    try:
        staff = db.session.get(Staff, int(staff_id))
    except (TypeError, ValueError):
        return None
    return staff if staff is not None and staff.active else None


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
