"""One structured log line per request, carrying the request id that the response also names."""
from __future__ import annotations

import json
import logging

from pythonjsonlogger.json import JsonFormatter

from app.core.request_log import _RequestIdFilter


def test_each_request_logs_one_json_line_with_its_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="linli.access")
    response = client.get("/api/internal/faq/none", headers={"Authorization": "Bearer test-bot-token"})
    records = [r for r in caplog.records if r.name == "linli.access"]
    assert len(records) == 1
    record = records[0]
    assert (record.method, record.path, record.status) == ("GET", "/api/internal/faq/none", 404)
    assert record.request_id == response.headers["X-Request-ID"] and len(record.request_id) == 32

    line = JsonFormatter("%(levelname)s %(name)s %(message)s %(request_id)s").format(record)
    assert json.loads(line)["request_id"] == record.request_id


def test_a_proxys_request_id_is_kept_but_hostile_text_is_replaced(client, caplog):
    caplog.set_level(logging.INFO, logger="linli.access")
    kept = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    replaced = client.get("/healthz", headers={"X-Request-ID": '", "forged": "1'})
    assert kept.headers["X-Request-ID"] == "abc123"
    assert replaced.headers["X-Request-ID"].isalnum() and "forged" not in replaced.headers["X-Request-ID"]


def test_log_lines_outside_a_request_carry_a_placeholder_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    assert _RequestIdFilter().filter(record) and record.request_id == "-"
