"""The app's Redis connection and RQ queues, one set per app."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis import Redis
from rq import Queue

QUEUE_NAMES = ("escalation", "outbound", "default")


@dataclass
class RedisState:
    redis: Redis
    queues: dict[str, Queue]


def init_redis(app: Flask) -> None:
    # Short timeouts: a dead Redis must fail a health check fast, not hang a request.
    redis = Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
    queues = {name: Queue(name, connection=redis) for name in QUEUE_NAMES}
    app.extensions["linli_redis"] = RedisState(redis=redis, queues=queues)


def get_redis() -> Redis:
    return current_app.extensions["linli_redis"].redis


def get_queue(name: str) -> Queue:
    return current_app.extensions["linli_redis"].queues[name]
