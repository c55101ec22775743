"""The fast half of inbound dedup: a Redis key per message id holding how its first delivery ended (the unique
row on (channel, external id) is the half that survives a Redis restart)."""
from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from app.core.redis_client import get_redis
from app.services import reports
from app.services.conversations.replies import Outcome

log = logging.getLogger(__name__)

DEDUP_TTL = 600  # seconds; WeChat retries within 15 s, Twilio within minutes
DUPLICATE_WAIT = 3.0  # how long a retried webhook waits for the first delivery's passive reply
_TAKE_OVER = """
if redis.call('get', KEYS[1]) == 'failed' then
  redis.call('set', KEYS[1], 'running', 'EX', ARGV[1])
  return 1
end
return 0
"""


class InboundGuard:
    """The fast half of inbound dedup: a Redis key per message id holding how its first delivery ended."""

    def __init__(self, channel: str, external_id: str):
        self.key = f"linli:inbound:{channel}:{external_id}"
        self.redis = get_redis()

    def claim(self) -> bool:
        try:
            return bool(self.redis.set(self.key, "running", nx=True, ex=DEDUP_TTL))
        except RedisError:
            return True  # the unique message row still lets only one through

    def finish(self, state: str, *, classify: int | None = None) -> None:
        """Record how the turn ended; with `classify`, queue that message's intent recording in the same
        round trip."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self.key, state, ex=DEDUP_TTL)
            if classify is not None:
                reports.classify_later(message_id=classify, pipeline=pipe)
            pipe.execute()
        except RedisError as exc:
            if classify is not None:
                log.warning("message %s will not be classified: %s", classify, exc)

    def release(self) -> None:
        try:
            self.redis.delete(self.key)
        except RedisError:
            pass

    def take_over_failed(self) -> bool:
        """Atomically turn a "failed" first delivery into this one's "running" turn."""
        try:
            return bool(self.redis.eval(_TAKE_OVER, 1, self.key, DEDUP_TTL))
        except RedisError:
            return False  # without Redis the unique row decides: the turn counts as taken

    def still_running(self) -> bool:
        """Whether the first delivery's claim is still "running" (it may be alive, or its node was killed)."""
        try:
            return self.redis.get(self.key) == b"running"
        except RedisError:
            return False

    def outcome_of_first(self, *, wait: float) -> Outcome:
        """A retry's answer: the first delivery's passive reply once it is known, else nothing."""
        deadline = time.monotonic() + wait
        while True:
            try:
                state = (self.redis.get(self.key) or b"").decode()
            except RedisError:
                state = ""
            if state.startswith("passive:"):
                return Outcome(passive_text=state[len("passive:"):], duplicate=True)
            if state != "running" or time.monotonic() >= deadline:
                return Outcome(duplicate=True)
            time.sleep(0.05)
