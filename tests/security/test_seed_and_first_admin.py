"""The demo seed's public logins never reach production; deployers create the first accounts with a password
of their own (issue 26)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from app.core.extensions import db
from app.models import HelpDevice, Resident, Staff, Street
from app.services import staff
from tests.conftest import make_test_app
from tests.factories import StaffFactory, StreetFactory

PASSWORD = "plum-tree-lantern-42"


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def production_app(app):
    """The app as deployed: ENV=production with every secret production requires (Settings.validate)."""
    return make_test_app(ENV="production", TWILIO_AUTH_TOKEN="test-twilio-auth-token",
                         WECHAT_AES_KEY="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")


def invoke(app, *args, input=None, env=None):
    # The end of the command's app context closes the session: what the test built is committed first (into the
    # `session` fixture's outer transaction, still rolled back at the end).
    db.session.commit()
    # A command runs in the app context already pushed, if any (the fixture's): push this app's own.
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args), input=input, env=env)


def create_staff(app, *args, input=None, env=None):
    return invoke(app, "create-staff", *args, input=input, env=env)


def test_seed_demo_refuses_to_run_in_production_and_creates_nothing(session, production_app):
    result = invoke(production_app, "seed-demo")
    assert result.exit_code != 0
    assert "production" in result.output
    assert "create-staff" in result.output  # tells the deployer what to do instead
    assert count(Staff) == 0 and count(HelpDevice) == 0 and count(Street) == 0 and count(Resident) == 0


def test_seed_demo_still_seeds_outside_production(session, app):
    result = invoke(app, "seed-demo")
    assert result.exit_code == 0, result.output
    assert count(Staff, Staff.username == "admin") == 1


def test_create_staff_prompts_twice_and_makes_a_working_admin(session, production_app):
    StreetFactory(code="east")
    result = create_staff(production_app, "--username", "lead", "--street", "east", "--admin",
                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the prompt hides what is typed
    member = staff.authenticate(username="lead", password=PASSWORD)
    assert member.role == "admin" and member.street.code == "east" and member.active


def test_create_staff_takes_the_password_from_the_environment_or_stdin(session, app):
    StreetFactory(code="east")
    from_env = create_staff(app, "--username", "clerk1", "--street", "east",
                            env={"LINLI_STAFF_PASSWORD": PASSWORD})
    assert from_env.exit_code == 0, from_env.output
    from_stdin = create_staff(app, "--username", "clerk2", "--street", "east", "--password-stdin",
                              input=PASSWORD + "\n")
    assert from_stdin.exit_code == 0, from_stdin.output
    for result, name in ((from_env, "clerk1"), (from_stdin, "clerk2")):
        assert PASSWORD not in result.output
        assert staff.authenticate(username=name, password=PASSWORD).role == "staff"


def test_create_staff_has_no_password_argument(session, app):
    StreetFactory(code="east")
    result = create_staff(app, "--username", "lead", "--street", "east", "--password", PASSWORD)
    assert result.exit_code != 0
    assert count(Staff) == 0


@pytest.mark.parametrize("weak", ["short-pw", "lead-lead-lead", "LEAD-LEAD-LEAD"])
def test_create_staff_refuses_a_weak_password(session, app, weak):
    StreetFactory(code="east")
    result = create_staff(app, "--username", "lead-lead-lead", "--street", "east", input=f"{weak}\n{weak}\n")
    assert result.exit_code != 0
    assert "12" in result.output or "用户名" in result.output
    assert weak not in result.output.replace("lead-lead-lead", "")  # echoes no password
    assert count(Staff) == 0


def test_create_staff_refuses_an_existing_username_and_keeps_its_password(session, app):
    StaffFactory(username="lead", password="the-old-password", street=StreetFactory(code="east"))
    result = create_staff(app, "--username", "lead", "--street", "east",
                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code != 0
    assert "lead" in result.output and "已存在" in result.output
    assert PASSWORD not in result.output
    kept = db.session.scalar(select(Staff).where(Staff.username == "lead"))
    assert check_password_hash(kept.password_hash, "the-old-password")
    assert count(Staff) == 1


def test_create_staff_creates_the_first_street_only_when_named(session, app):
    refused = create_staff(app, "--username", "lead", "--street", "west", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert refused.exit_code != 0
    assert "--street-name" in refused.output
    assert count(Staff) == 0 and count(Street) == 0
    created = create_staff(app, "--username", "lead", "--street", "west", "--street-name", "西城街道", "--admin",
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert created.exit_code == 0, created.output
    member = staff.authenticate(username="lead", password=PASSWORD)
    assert (member.street.code, member.street.name, member.role) == ("west", "西城街道", "admin")
