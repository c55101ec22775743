"""Which web processes are alive: each keeps a short-lived Redis key refreshed by a daemon thread, so a retried
webhook can tell a first delivery still at work from one whose process was killed (kill -9, OOM, a lost host)."""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from app.core.redis_client import get_redis

log = logging.getLogger(__name__)

# A process whose key is gone this long is dead. WeChat tries a message 3 times ~5 s apart, so a process killed
# within a first delivery's 4 s budget is seen dead by the third try at the latest (killed at 4 s, last refreshed
# then: gone at 9 s, before the try at ~10 s). A live process refreshes it LIVENESS_TTL / REFRESHES_PER_TTL
# seconds apart: it would have to miss five refreshes in a row to be taken for dead.
LIVENESS_TTL = 5
REFRESHES_PER_TTL = 5
_EXTENSION_KEY = "linli.liveness"
_lock = threading.Lock()
_process: tuple[int, str] | None = None  # (pid, id): a forked worker gets an id of its own
_beating: set[tuple[int, str]] = set()  # (pid, Redis location): one heartbeat per Redis, however many apps


def node_id() -> str:
    """This process's id (host, pid and a random part, since pids repeat across hosts and restarts); the first
    call in a process, per app, starts its heartbeat."""
    global _process
    pid = os.getpid()
    process = _process
    if process is None or process[0] != pid:
        with _lock:
            if _process is None or _process[0] != pid:
                _process = (pid, f"{socket.gethostname()[:40]}:{pid}:{secrets.token_hex(4)}")
            process = _process
    app = current_app._get_current_object()
    if app.extensions.get(_EXTENSION_KEY) != process:
        _start_heartbeat(app, process)
    return process[1]


def alive_key(node: str) -> str:
    return f"linli:node:{node}"


def _start_heartbeat(app, process: tuple[int, str]) -> None:
    with _lock:
        if app.extensions.get(_EXTENSION_KEY) == process:
            return
        redis = get_redis()
        where = redis.connection_pool.connection_kwargs
        beat = (process[0], f"{where.get('host')}:{where.get('port')}/{where.get('db')}:{where.get('path')}")
        if beat not in _beating:
            _refresh(redis, process[1])  # before the first claim that names this process
            threading.Thread(target=_beat, args=(redis, process), name="liveness", daemon=True).start()
            _beating.add(beat)
        app.extensions[_EXTENSION_KEY] = process


def _beat(redis: Redis, process: tuple[int, str]) -> None:
    stop = threading.Event()
    while not stop.wait(LIVENESS_TTL / REFRESHES_PER_TTL):
        if os.getpid() != process[0]:
            return  # a thread copied by fork does not run, but be sure: the child's heartbeat is its own
        _refresh(redis, process[1])


def _refresh(redis: Redis, node: str) -> None:
    try:
        redis.set(alive_key(node), 1, ex=LIVENESS_TTL)
    except RedisError as exc:
        # Its claims cannot be taken over for LIVENESS_TTL after they were made anyway (dedup.py), and without
        # Redis no retry reads them.
        log.warning("liveness key of %s not refreshed: %s", node, exc)
