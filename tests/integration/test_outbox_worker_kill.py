"""A worker killed with SIGKILL in the middle of a burst loses no message and sends none twice.

Delivery is at least once: a worker killed after WeChat accepted a message but before its commit leaves the
row "sending", and the row goes again after its lease (no provider takes an idempotency key). The kill is
therefore made at a moment outside that window (checked with the worker frozen by SIGSTOP), and the test
proves everything else: queued jobs survive, a row claimed but not sent is recovered by the sweeper, and a
second worker finishes the burst with every message at the stub exactly once, in each conversation's order.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import select, update

from app.core.extensions import db
from app.models import OutboundMessage
from app.models.base import utcnow
from app.services.delivery import sending as delivery
from app.services.outbox import messages as outbox
from tests.factories import ChannelIdentityFactory, ResidentFactory
from tests.integration.test_worker import ROOT, worker_env

KEFU = "/cgi-bin/message/custom/send"
CONVERSATIONS, PER_CONVERSATION = 8, 10


def delivered(stub) -> list[tuple[str, str]]:
    return [(c["json"]["touser"], c["json"]["text"]["content"])
            for c in stub.calls_to(KEFU) if c["response"] and c["response"].get("errcode") == 0]


def sending_rows() -> list[OutboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboundMessage).where(OutboundMessage.status == "sending")))


def start_worker(app, stub, *, burst: bool) -> subprocess.Popen:
    env = worker_env(app, WECHAT_APP_ID=stub.app_id, WECHAT_SECRET=stub.secret, WECHAT_API_BASE=stub.api_base)
    args = [sys.executable, "-m", "flask", "worker", "--queues", "outbound"] + (["--burst"] if burst else [])
    # Its own process group: RQ's scheduler runs in a child process that a kill of the worker alone would orphan.
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_group(worker: subprocess.Popen) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait(timeout=10)


def kill_between_sends(worker: subprocess.Popen, stub) -> None:
    """SIGKILL at a moment when no row is both accepted by the stub and still uncommitted."""
    for _ in range(200):
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(0.05)  # a request already on the wire reaches the stub's log meanwhile
        at_stub = {body for _, body in delivered(stub)}
        if not any(row.body in at_stub for row in sending_rows()):
            kill_group(worker)
            return
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.004)
    raise AssertionError("never found a moment between a send and its commit")


def test_a_worker_killed_mid_burst_loses_nothing_and_the_next_one_sends_each_message_once(app, committed,
                                                                                          wechat_stub):
    conversations = []
    for n in range(CONVERSATIONS):
        identity = ChannelIdentityFactory(resident=ResidentFactory(), channel="wechat", external_id=f"oKill{n:04d}")
        db.session.commit()
        conversations.append(outbox.conversation_for(resident_id=identity.resident_id, channel="wechat"))
    rows = [outbox.stage_message(conversation_id=c.id, body=f"{c.address}-第{k}条")
            for k in range(PER_CONVERSATION) for c in conversations]
    db.session.commit()
    outbox.dispatch(outbound_ids=[r.id for r in rows])

    first = start_worker(app, wechat_stub, burst=False)
    try:
        deadline = time.monotonic() + 60
        while len(delivered(wechat_stub)) < 15:
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first worker delivered too little"
            time.sleep(0.01)
        kill_between_sends(first, wechat_stub)
    finally:
        kill_group(first)
    assert len(delivered(wechat_stub)) < len(rows), "the kill came after the burst, not in its middle"

    # Time passes beyond the lease of whatever the dead worker had claimed; the sweeper takes it back.
    db.session.execute(update(OutboundMessage).where(OutboundMessage.status == "sending")
                       .values(next_attempt_at=utcnow()))
    db.session.commit()
    delivery.sweep()

    second = start_worker(app, wechat_stub, burst=True)
    try:
        _, stderr = second.communicate(timeout=180)
    finally:
        kill_group(second)  # the burst worker's scheduler child, too
    assert second.returncode == 0, stderr[-2000:]

    sent = delivered(wechat_stub)
    assert sorted(body for _, body in sent) == sorted(r.body for r in rows)  # each exactly once
    for c in conversations:
        assert [body for to, body in sent if to == c.address] == [f"{c.address}-第{k}条" for k in range(PER_CONVERSATION)]
    db.session.expire_all()
    assert {r.status for r in db.session.scalars(select(OutboundMessage))} == {"sent"}
