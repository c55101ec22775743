"""An alert survives a flushed Redis and a worker killed with SIGKILL mid-chain, without a duplicate call."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.core import tasks
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import EscalationStep, HelpAlert
from app.models.base import utcnow
from app.services.help import escalation as help_escalation
from tests.conftest import TEST_SETTINGS
from tests.helpers.help_calls import CALLS_PATH, call_requests, drain, gather_url, press, twilio_settings, wait_for
from tests.helpers.help import make_chain, make_device

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make_overdue(alert_id: int) -> None:
    db.session.execute(update(HelpAlert).where(HelpAlert.id == alert_id)
                       .values(step_due_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_a_redis_flush_mid_chain_is_resumed_by_the_sweeper(help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
    alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
    drain(help_app)
    assert [c["to"] for c in call_requests(twilio_stub)] == phones[:1]

    with help_app.app_context():
        get_redis().flushdb()  # the scheduled "step 1 is due" job is gone (only our test database)
    drain(help_app)
    assert len(call_requests(twilio_stub)) == 1  # nothing left in Redis would ever move it
    with help_app.app_context():
        _make_overdue(alert_id)  # time passes: the step is due
        help_escalation.sweep()  # the ticker's sweep job
    drain(help_app)
    assert [c["to"] for c in call_requests(twilio_stub)] == phones[:2]
    with help_app.app_context():
        assert db.session.get(HelpAlert, alert_id).step == 2


def _start_worker(help_app, stub) -> subprocess.Popen:
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()},
           **{k: str(v) for k, v in twilio_settings(stub).items()},
           "DATABASE_URL": help_app.config["DATABASE_URL"], "REDIS_URL": help_app.config["REDIS_URL"],
           "PUBLIC_BASE_URL": help_app.config["PUBLIC_BASE_URL"], "FLASK_APP": "wsgi"}
    return subprocess.Popen([sys.executable, "-m", "flask", "worker", "--queues", "escalation"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)


@pytest.mark.slow
def test_a_worker_killed_mid_call_request_leaves_no_duplicate_call_and_the_chain_completes(
        help_db, served, twilio_stub):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
    first_worker = _start_worker(help_app, twilio_stub)
    second_worker = None
    try:
        alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
        first = wait_for(lambda: [c for c in call_requests(twilio_stub) if c["sid"]], what="the first call")[0]
        assert first["to"] == phones[0]

        # Twilio is slow to take the next call; the worker is killed while it waits for the answer.
        twilio_stub.fail(path=CALLS_PATH, sleep=2)
        twilio_stub.status_callback(first["sid"], "no-answer")
        wait_for(lambda: len(twilio_stub.calls_to(CALLS_PATH)) == 2, what="the second call request")
        _kill(first_worker)
        with help_app.app_context():
            attempt = db.session.scalar(select(EscalationStep).where(EscalationStep.step == 2))
            assert attempt.status == "dialing"  # Twilio may have taken it: it must never be dialled again
            _make_overdue(alert_id)

        second_worker = _start_worker(help_app, twilio_stub)
        with help_app.app_context():
            assert tasks.later("help.sweep_alerts", job_id="test-sweep-1")  # what the ticker does
        # Answered, not only arrived: the stub records a request as it comes in, and its sid with the answer.
        third = wait_for(lambda: [c for c in call_requests(twilio_stub) if c["to"] == phones[2] and c["sid"]],
                         what="the third call")[0]
        pressed = twilio_stub.post_signed(gather_url(third), {"CallSid": third["sid"], "Digits": "1"})
        assert "已确认由您前往" in pressed.text

        with help_app.app_context():
            tasks.later("help.sweep_alerts", job_id="test-sweep-2")
        wait_for(lambda: get_redis_len(help_app) == 0, what="the queue to drain")
        assert sorted(c["to"] for c in call_requests(twilio_stub)) == sorted(phones)  # each exactly once
        with help_app.app_context():
            alert = db.session.get(HelpAlert, alert_id)
            assert alert.status == "accepted" and alert.accepted_contact_id == contacts[2].id
    finally:
        _kill(first_worker)
        if second_worker is not None:
            _kill(second_worker)


def get_redis_len(help_app) -> int:
    with help_app.app_context():
        return get_redis().llen("rq:queue:escalation")
