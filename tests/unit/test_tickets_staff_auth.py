"""Staff sign-in: right and wrong passwords, lockout after five failures for fifteen minutes."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.errors import Forbidden, Unauthorized
from app.models.base import utcnow
from app.services.staff import auth as staff_auth
from tests.factories import StaffFactory


def test_the_right_password_signs_in_and_clears_failures(session):
    staff = StaffFactory(failed_logins=3)
    assert staff_auth.authenticate(username=staff.username, password="correct horse").id == staff.id
    assert staff.failed_logins == 0


@pytest.mark.parametrize("username, password", [("nobody", "correct horse"), (None, ""), ("", None)])
def test_unknown_users_get_the_same_answer_as_wrong_passwords(session, username, password):
    with pytest.raises(Unauthorized) as exc:
        staff_auth.authenticate(username=username, password=password)
    assert exc.value.code == "invalid_credentials"


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(session):
    staff = StaffFactory()
    for _ in range(4):
        with pytest.raises(Unauthorized):
            staff_auth.authenticate(username=staff.username, password="guess")
    with pytest.raises(staff_auth.AccountLocked):
        staff_auth.authenticate(username=staff.username, password="guess")
    assert staff.locked_until - utcnow() > timedelta(minutes=14)
    # Locked: even the right password is refused, so guessing cannot continue.
    with pytest.raises(staff_auth.AccountLocked):
        staff_auth.authenticate(username=staff.username, password="correct horse")
    later = utcnow() + timedelta(minutes=16)
    assert staff_auth.authenticate(username=staff.username, password="correct horse", now=later).id == staff.id


def test_an_inactive_account_cannot_sign_in_or_keep_its_session(session):
    staff = StaffFactory(active=False)
    with pytest.raises(Unauthorized):
        staff_auth.authenticate(username=staff.username, password="correct horse")
    assert staff_auth.load_staff(staff.id) is None
    assert staff_auth.load_staff("not-a-number") is None


def test_only_a_team_lead_switches_someone_elses_duty(session):
    staff = StaffFactory(on_duty=True)
    colleague = StaffFactory(street=staff.street)
    lead = StaffFactory(street=staff.street, role="admin")
    staff_auth.set_on_duty(actor=staff, staff_id=staff.id, on_duty=False)
    assert staff.on_duty is False
    with pytest.raises(Forbidden):
        staff_auth.set_on_duty(actor=colleague, staff_id=staff.id, on_duty=True)
    staff_auth.set_on_duty(actor=lead, staff_id=staff.id, on_duty=True)
    assert staff.on_duty is True
