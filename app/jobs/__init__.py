"""Background jobs on RQ: small functions on named queues that take ids and call one service."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from app.redis_client import get_queue

log = logging.getLogger(__name__)


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
