"""Staff sign-in: right and wrong passwords, five failures per name and address (tests/security/test_sign_in_abuse.py
has the whole budget)."""
from __future__ import annotations

import pytest

from app.core.errors import Forbidden, Unauthorized
from app.services.staff import auth as staff_auth
from tests.factories import StaffFactory


def test_the_right_password_signs_in_and_clears_failures(session):
    staff = StaffFactory()
    for _ in range(4):
        with pytest.raises(Unauthorized):
            staff_auth.authenticate(username=staff.username, password="guess", client_ip="10.0.0.1")
    assert staff_auth.authenticate(username=staff.username, password="correct horse", client_ip="10.0.0.1").id \
        == staff.id
    for _ in range(4):  # the four failures before were forgiven: four more are still just wrong passwords
        with pytest.raises(Unauthorized):
            staff_auth.authenticate(username=staff.username, password="guess", client_ip="10.0.0.1")


@pytest.mark.parametrize("username, password", [("nobody", "correct horse"), (None, ""), ("", None)])
def test_unknown_users_get_the_same_answer_as_wrong_passwords(session, username, password):
    with pytest.raises(Unauthorized) as exc:
        staff_auth.authenticate(username=username, password=password)
    assert exc.value.code == "invalid_credentials"


def test_five_wrong_passwords_from_one_address_refuse_that_name_there_only(session):
    staff = StaffFactory()
    for _ in range(5):
        with pytest.raises(Unauthorized):
            staff_auth.authenticate(username=staff.username, password="guess", client_ip="10.6.6.6")
    # Refused: even the right password, so guessing from there cannot continue...
    with pytest.raises(staff_auth.TooManyAttempts):
        staff_auth.authenticate(username=staff.username, password="correct horse", client_ip="10.6.6.6")
    # ...while the owner, elsewhere, is not locked out.
    assert staff_auth.authenticate(username=staff.username, password="correct horse", client_ip="10.1.1.1").id \
        == staff.id


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
