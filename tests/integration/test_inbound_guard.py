"""The inbound guard lets exactly one retry take over a stored message whose first turn failed."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app.services.conversations.dedup import InboundGuard


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
