"""The RQ worker the Flask CLI starts: every job runs inside a fresh app context."""
from __future__ import annotations

from flask import Flask
from rq import SimpleWorker

from app.core.redis_client import QUEUE_NAMES


class AppContextWorker(SimpleWorker):
    """Runs jobs in-process (no fork per job, which keeps help escalation fast) in an app context.

    A fresh context per job gives each job its own database session, so no job sees another's
    stale rows.
    """

    flask_app: Flask | None = None

    def perform_job(self, job, queue):
        with self.flask_app.app_context():
            return super().perform_job(job, queue)


def build_worker(app: Flask, queue_names: tuple[str, ...] = QUEUE_NAMES) -> AppContextWorker:
    state = app.extensions["linli_redis"]
    # Queue order is priority order: escalation first, then outbound, then the rest.
    worker = AppContextWorker([state.queues[name] for name in queue_names], connection=state.redis)
    worker.flask_app = app
    return worker
