"""Creating staff accounts: how a deployment gets its first team lead (`flask create-staff`), since the demo
seed's public logins are refused in production."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Staff, Street

MIN_PASSWORD_LENGTH = 12


def create_staff(*, username: str, password: str, street_code: str, admin: bool = False,
                 display_name: str | None = None, street_name: str | None = None) -> Staff:
    """A new active account of the street `street_code`, a team lead when `admin`.

    The street is created only when `street_name` is given (a fresh deployment has none); a typo in the code of
    an existing street is refused instead of quietly becoming a second street."""
    username = (username or "").strip()
    street_code = (street_code or "").strip()
    if not username or len(username) > Staff.username.type.length:
        raise ValidationFailed(f"用户名须为1至{Staff.username.type.length}个字符", code="invalid_username")
    _check_password(username, password)
    if db.session.scalar(select(Staff.id).where(Staff.username == username)):
        raise Conflict(f"用户名 {username} 已存在", code="username_taken")
    street = db.session.scalar(select(Street).where(Street.code == street_code))
    if street is None:
        if not (street_name or "").strip():
            raise NotFound(f"没有代码为 {street_code!r} 的街道；新建街道请同时给出 --street-name",
                           code="street_not_found")
        street = Street(code=street_code, name=street_name.strip())
        db.session.add(street)
    member = Staff(street=street, username=username, display_name=(display_name or username).strip(),
                   role="admin" if admin else "staff", password_hash=generate_password_hash(password))
    db.session.add(member)
    try:
        db.session.commit()
    except IntegrityError as exc:
        # Someone took the name (or the street code) between the check and the commit.
        db.session.rollback()
        raise Conflict(f"用户名 {username} 已存在", code="username_taken") from exc
    return member


def _check_password(username: str, password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"密码至少{MIN_PASSWORD_LENGTH}个字符", code="weak_password")
    if password.strip().casefold() == username.casefold():
        raise ValidationFailed("密码不能与用户名相同", code="weak_password")
