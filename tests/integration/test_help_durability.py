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
from tests.conftest import TEST_SETTINGS, make_test_app
from tests.helpers.help import make_chain, make_device
from tests.helpers.help_calls import drain, network_of, press, wait_for
from tests.stubs.server import ServerThread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=["twilio", "aliyun"])
def network(request, twilio_stub, aliyun_stub):
    """The provider that carries the calls (Twilio or Aliyun), each through its real SDK and its stub."""
    return network_of(request.param, twilio_stub, aliyun_stub)


@pytest.fixture
def served(app, network):
    """(app, base_url): an app of its own on a loopback server, its calls going through `network`."""
    help_app = make_test_app(**network.settings())
    server = ServerThread(help_app)
    help_app.config["PUBLIC_BASE_URL"] = server.base_url
    network.connect(server.base_url)
    server.start()
    yield help_app, server.base_url
    server.stop()


def _make_overdue(alert_id: int) -> None:
    db.session.execute(update(HelpAlert).where(HelpAlert.id == alert_id)
                       .values(step_due_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_a_redis_flush_mid_chain_is_resumed_by_the_sweeper(help_db, served, network):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
    alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
    drain(help_app)
    assert [c["to"] for c in network.calls()] == phones[:1]

    with help_app.app_context():
        get_redis().flushdb()  # the scheduled "step 1 is due" job is gone (only our test database)
    drain(help_app)
    assert len(network.calls()) == 1  # nothing left in Redis would ever move it
    with help_app.app_context():
        _make_overdue(alert_id)  # time passes: the step is due
        help_escalation.sweep()  # the ticker's sweep job
    drain(help_app)
    assert [c["to"] for c in network.calls()] == phones[:2]
    with help_app.app_context():
        assert db.session.get(HelpAlert, alert_id).step == 2


def _start_worker(help_app, network) -> subprocess.Popen:
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()},
           **{k: str(v) for k, v in network.settings().items()},
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
        help_db, served, network):
    help_app, base = served
    with help_app.app_context():
        elder, contacts = make_chain(n=3, channels="voice")
        uid, secret = make_device(elder.id)
        phones = [c.phone for c in contacts]
    first_worker = _start_worker(help_app, network)
    second_worker = None
    try:
        alert_id = press(base, uid, secret, "p-1").json()["alert"]["id"]
        first = wait_for(lambda: [c for c in network.calls() if c["sid"]], what="the first call")[0]
        assert first["to"] == phones[0]

        # The provider is slow to take the next call; the worker is killed while it waits for the answer.
        network.slow_down_next_call(2)
        network.not_answered(first)
        wait_for(lambda: network.requests_count() == 2, what="the second call request")
        _kill(first_worker)
        with help_app.app_context():
            attempt = db.session.scalar(select(EscalationStep).where(EscalationStep.step == 2))
            assert attempt.status == "dialing"  # the provider may have taken it: it must never be dialled again
            assert attempt.provider == network.name  # recorded before the request went out
            _make_overdue(alert_id)

        second_worker = _start_worker(help_app, network)
        with help_app.app_context():
            assert tasks.later("help.sweep_alerts", job_id="test-sweep-1")  # what the ticker does
        # Answered, not only arrived: the stub records a request as it comes in, and its sid with the answer.
        third = wait_for(lambda: [c for c in network.calls() if c["to"] == phones[2] and c["sid"]],
                         what="the third call")[0]
        assert "已确认由您前往" in network.press(third, "1")

        with help_app.app_context():
            tasks.later("help.sweep_alerts", job_id="test-sweep-2")
        wait_for(lambda: get_redis_len(help_app) == 0, what="the queue to drain")
        assert sorted(c["to"] for c in network.calls()) == sorted(phones)  # each exactly once
        with help_app.app_context():
            alert = db.session.get(HelpAlert, alert_id)
            assert alert.status == "accepted" and alert.accepted_contact_id == contacts[2].id
            providers = db.session.scalars(select(EscalationStep.provider).where(EscalationStep.alert_id == alert_id))
            assert set(providers) == {network.name}
    finally:
        _kill(first_worker)
        if second_worker is not None:
            _kill(second_worker)


def get_redis_len(help_app) -> int:
    with help_app.app_context():
        return get_redis().llen("rq:queue:escalation")
