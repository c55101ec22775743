"""Background work by name, on RQ.

Each domain declares its jobs once, in its own `jobs.py`, with `@job("<domain>.<name>", queue=..., every=...)`.
A service that wants work done later calls `later("help.advance_alert", alert_id=...)`: it names the job and never
imports a jobs module, so jobs import services and never the reverse. The registry is filled by importing every
domain's `jobs.py` (found under `app.services`) the first time a job is looked up, as Celery's autodiscovery does.

Every job's work is also recorded in the database, so a job that cannot be queued (Redis down) is picked up by a
sweeper later instead of failing the request that asked for it.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import Flask
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from app.core.redis_client import get_queue, get_redis

log = logging.getLogger(__name__)
_EXCEPTION_LINE = re.compile(r"^[\w.]+(?:Error|Exception)\b.*$", re.M)

SERVICES_PACKAGE = "app.services"


@dataclass(frozen=True)
class Task:
    name: str  # "<domain>.<what>", the only way other code refers to the job
    path: str  # "module.function", what RQ stores and a worker imports
    queue: str
    every_seconds: int | None = None  # periodic: the ticker enqueues it once per period

    @property
    def periodic(self) -> bool:
        return self.every_seconds is not None


_TASKS: dict[str, Task] = {}
_loaded = False
_load_lock = threading.Lock()


def job(name: str, *, queue: str = "default", every: int | None = None):
    """Declare a job function under `name` on `queue`; with `every`, the ticker runs it every `every` seconds."""

    def register(func):
        task = Task(name, f"{func.__module__}.{func.__name__}", queue, every)
        known = _TASKS.get(name)
        if known is not None and known.path != task.path:
            raise RuntimeError(f"job {name!r} is declared twice: {known.path} and {task.path}")
        _TASKS[name] = task
        return func

    return register


def job_modules() -> list[str]:
    """Every domain's jobs module: `app.services.<domain>.jobs`."""
    services = importlib.import_module(SERVICES_PACKAGE)
    modules = []
    for info in sorted(pkgutil.iter_modules(services.__path__), key=lambda i: i.name):
        if info.ispkg and importlib.util.find_spec(f"{SERVICES_PACKAGE}.{info.name}.jobs") is not None:
            modules.append(f"{SERVICES_PACKAGE}.{info.name}.jobs")
    return modules


def load_jobs() -> None:
    """Import every domain's jobs module once, which registers its jobs."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if not _loaded:
            for module in job_modules():
                importlib.import_module(module)
            _loaded = True


def registered() -> dict[str, Task]:
    load_jobs()
    return dict(_TASKS)


def periodic() -> list[Task]:
    """What runs when: every periodic job of every domain."""
    return sorted((t for t in registered().values() if t.periodic), key=lambda t: t.name)


def task(name: str) -> Task:
    found = _TASKS.get(name)
    if found is None:
        load_jobs()
        found = _TASKS.get(name)
    if found is None:
        raise LookupError(f"no job is declared as {name!r}")  # a typo in code: fail loudly
    return found


def later(name: str, /, *, job_id: str | None = None, at: datetime | None = None, delay: timedelta | None = None,
          retry=None, **params) -> bool:
    """Queue job `name` with keyword `params`, after the rows it needs are committed; False if Redis is unreachable.

    `at` / `delay` schedule it (the worker's scheduler moves it on time); `retry` is an rq.Retry.
    """
    return enqueue(task(name), job_id=job_id, at=at, delay=delay, retry=retry, **params)


def later_many(name: str, /, runs: list[tuple[str, datetime | None, dict]]) -> bool:
    """later() for many runs of job `name`, (job id, at or None, params) each, in one Redis round trip; False if
    Redis is unreachable (then none may have been queued: each run's own durable state must bring it back)."""
    task_ = task(name)
    q = get_queue(task_.queue)
    try:
        with q.connection.pipeline() as pipe:
            for job_id, at, params in runs:
                options = {"job_id": job_id, "result_ttl": 600, "failure_ttl": 7 * 24 * 3600, "args": (),
                           "kwargs": params, "pipeline": pipe}
                if at is not None:
                    q.enqueue_at(at, task_.path, **options)
                else:
                    q.enqueue(task_.path, **options)
            pipe.execute()
        return True
    except RedisError:
        log.warning("could not enqueue %s runs of %s; the sweeper will pick them up", len(runs), task_.name)
        return False


def enqueue(task_: Task, *, job_id: str | None = None, at: datetime | None = None, delay: timedelta | None = None,
            retry=None, **params) -> bool:
    q = get_queue(task_.queue)
    # Explicit args/kwargs: a job parameter may never be mistaken for one of RQ's own options.
    options = {"job_id": job_id, "result_ttl": 600, "failure_ttl": 7 * 24 * 3600, "retry": retry,
               "args": (), "kwargs": params}
    try:
        if at is not None:
            q.enqueue_at(at, task_.path, **options)
        elif delay is not None:
            q.enqueue_in(delay, task_.path, **options)
        else:
            q.enqueue(task_.path, **options)
        return True
    except RedisError:
        log.warning("could not enqueue %s; the sweeper will pick it up", task_.name)
        return False


def requeue_failed(name: str, *, max_age: timedelta, now: datetime | None = None) -> int:
    """Put job `name`'s runs that used up their retries back on its queue; returns how many.

    For jobs that carry the only copy of their work (the database was down when they were queued): they go on
    being tried for `max_age` after their creation. An older one is given up, loudly, and leaves the registry.
    """
    wanted = task(name)
    q = get_queue(wanted.queue)
    registry = q.failed_job_registry
    now = now or datetime.now(timezone.utc)
    requeued = 0
    for failed in Job.fetch_many(registry.get_job_ids(), connection=q.connection):
        if failed is None or failed.func_name != wanted.path:  # gone meanwhile, or another job's failure
            continue
        if now - failed.created_at > max_age:
            result = failed.latest_result()
            # The exception's own line (database errors go on with their SQL and context lines).
            last_error = _EXCEPTION_LINE.findall(result.exc_string or "") if result else []
            log.error("giving up job %s (%s) after %s: its work is lost; last error: %s", failed.id, name, max_age,
                      last_error[-1] if last_error else "unknown")
            registry.remove(failed)
            continue
        try:
            registry.requeue(failed)
        except InvalidJobOperation:  # another sweep took it a moment ago
            continue
        requeued += 1
    return requeued


def tick(app: Flask, now: float | None = None) -> list[str]:
    """Enqueue every periodic job whose period has begun; a Redis claim per period keeps several tickers from
    doubling up."""
    now = time.time() if now is None else now
    queued = []
    with app.app_context():
        redis = get_redis()
        for due in periodic():
            bucket = int(now // due.every_seconds)
            try:
                claimed = redis.set(f"linli:tick:{due.name}:{bucket}", 1, nx=True, ex=due.every_seconds * 2)
            except RedisError:
                log.warning("redis unreachable; ticker skips this round")
                return queued
            # RQ's job ids take letters, digits, "_" and "-" only.
            if claimed and enqueue(due, job_id=f"periodic-{due.name.replace('.', '-')}-{bucket}"):
                queued.append(due.name)
    return queued


def run_ticker(app: Flask, *, interval: float = 1.0, stop_after: float | None = None) -> None:
    """The `flask ticker` loop."""
    started = time.time()
    while stop_after is None or time.time() - started < stop_after:
        tick(app)
        time.sleep(interval)
