"""Periodic sweeps the ticker enqueues: each makes sure durable work stored in the database gets done."""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass

from flask import Flask
from redis.exceptions import RedisError

from app.jobs import enqueue
from app.redis_client import get_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    func_path: str  # "module:function", resolved lazily so modules can register before they exist
    queue: str
    every_seconds: int


PERIODIC_TASKS: list[PeriodicTask] = []


def every(seconds: int, *, queue: str = "default"):
    """Register a job function to be enqueued every `seconds` by the ticker."""

    def register(func):
        PERIODIC_TASKS.append(PeriodicTask(func.__name__, f"{func.__module__}:{func.__name__}", queue, seconds))
        return func

    return register


def _resolve(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


TASK_MODULES = ("app.jobs.outbox", "app.jobs.help", "app.jobs.tickets", "app.jobs.booking", "app.jobs.schedules",
                "app.jobs.housekeeping", "app.jobs.reports", "app.jobs.bot", "app.jobs.conversations")


def load_task_modules() -> None:
    """Import the job modules whose functions carry @every."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def tick(app: Flask, now: float | None = None) -> list[str]:
    """Enqueue every task whose period has begun; a Redis claim per period keeps several tickers from doubling up."""
    now = time.time() if now is None else now
    queued = []
    with app.app_context():
        redis = get_redis()
        for task in PERIODIC_TASKS:
            bucket = int(now // task.every_seconds)
            try:
                claimed = redis.set(f"linli:tick:{task.name}:{bucket}", 1, nx=True, ex=task.every_seconds * 2)
            except RedisError:
                log.warning("redis unreachable; ticker skips this round")
                return queued
            if claimed and enqueue(task.queue, _resolve(task.func_path), job_id=f"periodic-{task.name}-{bucket}"):
                queued.append(task.name)
    return queued


def run_ticker(app: Flask, *, interval: float = 1.0, stop_after: float | None = None) -> None:
    """The `flask ticker` loop."""
    load_task_modules()
    started = time.time()
    while stop_after is None or time.time() - started < stop_after:
        tick(app)
        time.sleep(interval)
