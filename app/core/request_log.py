"""Structured logging: one JSON line per request, each carrying a request id."""
from __future__ import annotations

import logging
import sys
import time
import uuid

from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter

access_log = logging.getLogger("linli.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_linli", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._linli = True  # marks our handler so a second create_app() adds no duplicate
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"))
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)


def init_request_logging(app: Flask) -> None:
    @app.before_request
    def _start():
        # Accept a caller's id (a proxy's) only when it looks like one, never raw user text.
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response):
        elapsed_ms = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
        response.headers["X-Request-ID"] = g.get("request_id", "")
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed_ms, 2),
                "request_id": g.get("request_id", "-"),
            },
        )
        return response
