"""Background jobs on RQ: small functions on named queues that take ids and call one service."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from app.redis_client import get_queue

log = logging.getLogger(__name__)
_EXCEPTION_LINE = re.compile(r"^[\w.]+(?:Error|Exception)\b.*$", re.M)


def enqueue(queue: str, func, *args, job_id: str | None = None, at: datetime | None = None,
            delay: timedelta | None = None, **kwargs) -> bool:
    """Queue a job after the rows it needs are committed; False if Redis is unreachable.

    Every job's work is also recorded in the database, so a job that cannot be queued is picked
    up later by a sweeper instead of failing the request that asked for it.
    """
    q = get_queue(queue)
    options = {"job_id": job_id, "result_ttl": 600, "failure_ttl": 7 * 24 * 3600}
    try:
        if at is not None:
            q.enqueue_at(at, func, *args, **options, **kwargs)
        elif delay is not None:
            q.enqueue_in(delay, func, *args, **options, **kwargs)
        else:
            q.enqueue(func, *args, **options, **kwargs)
        return True
    except RedisError:
        log.warning("could not enqueue %s; the sweeper will pick it up", getattr(func, "__name__", func))
        return False


def requeue_failed(queue: str, func, *, max_age: timedelta, now: datetime | None = None) -> int:
    """Put `func`'s jobs that used up their retries on `queue` back on it; returns how many.

    For jobs that carry the only copy of their work (the database was down when they were queued): they go on
    being tried for `max_age` after their creation. An older one is given up, loudly, and leaves the registry.
    """
    q = get_queue(queue)
    registry = q.failed_job_registry
    wanted = f"{func.__module__}.{func.__name__}"
    now = now or datetime.now(timezone.utc)
    requeued = 0
    for job in Job.fetch_many(registry.get_job_ids(), connection=q.connection):
        if job is None or job.func_name != wanted:  # gone meanwhile, or another job's failure
            continue
        if now - job.created_at > max_age:
            result = job.latest_result()
            # The exception's own line (database errors go on with their SQL and context lines).
            last_error = _EXCEPTION_LINE.findall(result.exc_string or "") if result else []
            log.error("giving up job %s (%s) after %s: its work is lost; last error: %s", job.id, wanted, max_age,
                      last_error[-1] if last_error else "unknown")
            registry.remove(job)
            continue
        try:
            registry.requeue(job)
        except InvalidJobOperation:  # another sweep took it a moment ago
            continue
        requeued += 1
    return requeued
