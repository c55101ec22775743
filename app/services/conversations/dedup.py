"""The fast half of inbound dedup: a Redis key per message id holding how its first delivery ended (the unique
row on (channel, external id) is the half that survives a Redis restart).

While a turn runs, the key says "running:<process id>" (liveness.py). A retry that finds it so takes the turn over
only when that process is dead, and only one retry can: the message is answered even when its node was killed
after storing it, and the bot is never asked twice while the first delivery's process lives."""
from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from app.core.redis_client import get_redis
from app.services import reports
from app.services.conversations.liveness import LIVENESS_TTL, alive_key, node_id
from app.services.conversations.replies import Outcome

log = logging.getLogger(__name__)

DEDUP_TTL = 600  # seconds; WeChat retries within 15 s, Twilio within minutes
DUPLICATE_WAIT = 3.0  # how long a retried webhook waits for the first delivery's passive reply
RUNNING = "running"  # the state's prefix; a bare "running" (a claim of the release before) names no process
_TAKE_OVER = """
if redis.call('get', KEYS[1]) == 'failed' then
  redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[1])
  return 1
end
return 0
"""
# KEYS: the guard, the liveness key of the process its claim names; ARGV: the claim seen, this delivery's claim,
# DEDUP_TTL, LIVENESS_TTL. A claim younger than LIVENESS_TTL is never taken over: its process was alive when it
# made it, so a missing liveness key then means only that Redis was flushed and the heartbeat has not run since.
# The guard's age is read from its TTL (every write of it sets DEDUP_TTL), so no two clocks are compared.
_TAKE_OVER_DEAD = """
if redis.call('get', KEYS[1]) ~= ARGV[1] or redis.call('exists', KEYS[2]) == 1 then
  return 0
end
local left = redis.call('pttl', KEYS[1])
if left < 0 or tonumber(ARGV[3]) * 1000 - left < tonumber(ARGV[4]) * 1000 then
  return 0
end
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
_FINISH_IF_MINE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 0
"""
# The owner of a turn about to queue its late answer: still its turn (or the key is gone, or says STORED: nobody
# took it over)?
# Rewriting the claim makes it young again, so it cannot be taken over while the answer is being queued.
_KEEP = """
local state = redis.call('get', KEYS[1])
if state == ARGV[1] or state == ARGV[3] then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if state then
  return 0
end
return 1
"""
# What a delivery writes that found the message stored already and answered nothing (the guard was gone: Redis
# restarted empty or flushed). Not a take-over: the turn's owner, still waiting for the bot, queues its answer.
STORED = "stored"


class InboundGuard:
    """The fast half of inbound dedup: a Redis key per message id holding how its first delivery ended."""

    def __init__(self, channel: str, external_id: str):
        self.key = f"linli:inbound:{channel}:{external_id}"
        self.redis = get_redis()
        self.mine = f"{RUNNING}:{node_id()}"  # this delivery's claim: the turn is this process's

    def claim(self) -> bool:
        try:
            return bool(self.redis.set(self.key, self.mine, nx=True, ex=DEDUP_TTL))
        except RedisError:
            return True  # the unique message row still lets only one through

    def own(self) -> None:
        """Name this process in a claim this delivery did not make (it stored the message after all)."""
        try:
            self.redis.set(self.key, self.mine, ex=DEDUP_TTL)
        except RedisError:
            pass

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

    def finish_if_mine(self, state: str) -> None:
        """Record how the turn ended unless another delivery has claimed it since (own())."""
        try:
            self.redis.eval(_FINISH_IF_MINE, 1, self.key, self.mine, state, DEDUP_TTL)
        except RedisError:
            pass

    def release(self) -> None:
        try:
            self.redis.delete(self.key)
        except RedisError:
            pass

    def take_over_failed(self) -> bool:
        """Atomically turn a "failed" first delivery into this one's "running" turn."""
        try:
            return bool(self.redis.eval(_TAKE_OVER, 1, self.key, DEDUP_TTL, self.mine))
        except RedisError:
            return False  # without Redis the unique row decides: the turn counts as taken

    def still_running(self) -> bool:
        """Whether the first delivery's claim is still "running" (its process is alive, or was killed before
        the claim was old enough to be taken over, or the claim names no process)."""
        try:
            return (self.redis.get(self.key) or b"").startswith(RUNNING.encode())
        except RedisError:
            return False

    def outcome_of_first(self, *, wait: float) -> Outcome | None:
        """A retry's answer: the first delivery's passive reply once it is known, else nothing. None: the first
        delivery's process is dead, and this delivery took the turn over (no other retry can)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                state = (self.redis.get(self.key) or b"").decode()
            except RedisError:
                state = ""
            if state.startswith("passive:"):
                return Outcome(passive_text=state[len("passive:"):], duplicate=True)
            if not state.startswith(RUNNING):
                return Outcome(duplicate=True)
            if self._take_over_dead(state):
                return None
            if time.monotonic() >= deadline:
                return Outcome(duplicate=True)
            time.sleep(0.05)

    def _take_over_dead(self, state: str) -> bool:
        owner = state[len(RUNNING) + 1:]
        if not owner:
            return False  # a claim that names no process (the release before): never taken over
        try:
            return bool(self.redis.eval(_TAKE_OVER_DEAD, 2, self.key, alive_key(owner), state, self.mine,
                                        DEDUP_TTL, LIVENESS_TTL))
        except RedisError:
            return False

    def keep_if_mine(self) -> bool:
        """Before a late answer is queued: False when another delivery has taken the turn over since (this
        process was taken for dead), so that the turn is answered once; True otherwise."""
        try:
            return bool(self.redis.eval(_KEEP, 1, self.key, self.mine, DEDUP_TTL, STORED))
        except RedisError:
            return True  # nobody can take a turn over without Redis either
