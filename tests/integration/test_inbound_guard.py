"""The inbound guard lets exactly one retry take over a stored message whose first turn failed, or whose first
delivery's process died (and only that: never a live process's turn)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app.services.conversations.dedup import DEDUP_TTL, InboundGuard
from app.services.conversations.liveness import LIVENESS_TTL, alive_key


def test_only_one_of_many_retries_takes_over_a_failed_turn(app):
    with app.app_context():
        guard = InboundGuard("wechat", "msg-failed-1")
        assert guard.claim()
        guard.finish("failed")

        def retry(_):
            with app.app_context():
                return InboundGuard("wechat", "msg-failed-1").take_over_failed()

        with ThreadPoolExecutor(8) as pool:
            taken = list(pool.map(retry, range(8)))
        assert taken.count(True) == 1


def test_a_running_or_finished_turn_is_never_taken_over(app):
    with app.app_context():
        running = InboundGuard("wechat", "msg-running")
        assert running.claim()
        assert not InboundGuard("wechat", "msg-running").take_over_failed()
        running.finish("passive:你好")
        assert not InboundGuard("wechat", "msg-running").take_over_failed()


def test_only_one_of_many_retries_takes_over_the_old_claim_of_a_dead_process(app):
    with app.app_context():
        guard = InboundGuard("wechat", "msg-dead-owner")
        guard.redis.set(guard.key, "running:host-gone:77:dead", ex=DEDUP_TTL - LIVENESS_TTL - 1)

        def retry(_):
            with app.app_context():
                return InboundGuard("wechat", "msg-dead-owner").outcome_of_first(wait=0.0)

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(retry, range(8)))
        assert outcomes.count(None) == 1  # None: this retry took the turn over
        assert guard.redis.get(guard.key) == guard.mine.encode()


def test_a_young_claim_an_unnamed_claim_and_a_live_process_are_never_taken_over(app):
    with app.app_context():
        young = InboundGuard("wechat", "msg-young")
        young.redis.set(young.key, "running:host-gone:78:dead", ex=DEDUP_TTL)  # its liveness not yet lapsed
        unnamed = InboundGuard("wechat", "msg-unnamed")
        unnamed.redis.set(unnamed.key, "running", ex=DEDUP_TTL - LIVENESS_TTL - 1)  # the release before
        alive = InboundGuard("wechat", "msg-alive")
        alive.redis.set(alive_key("host-up:79:alive"), 1, ex=LIVENESS_TTL)
        alive.redis.set(alive.key, "running:host-up:79:alive", ex=DEDUP_TTL - LIVENESS_TTL - 1)
        for guard in (young, unnamed, alive):
            assert InboundGuard("wechat", guard.key.rsplit(":", 1)[1]).outcome_of_first(wait=0.0) is not None
            assert guard.redis.get(guard.key).startswith(b"running")
            assert not guard.redis.get(guard.key).endswith(guard.mine.encode())
