"""One guard for every JSON request body, run before any route, schema (webargs) or request.get_json() reads it.

Two kinds of body are valid JSON syntax and still no request of this API: a lone UTF-16 surrogate escape
("\\ud800"), which parses into a str no UTF-8 text can hold (the database, a hash or a log line then fails with a
500), and nesting deeper than any request needs (100,000 opening brackets exhaust the parser's recursion: a 500
too). Both are answered 400 `invalid_json`, like a body that does not parse.
"""
from __future__ import annotations

import json
import re

from flask import Flask, request

from app.core.errors import error_body

# The deepest real body is a few levels (a help chain: object, list, contact, channels); 32 leaves room.
MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800 to \udfff, either case


def init_json_body_guard(app: Flask) -> None:
    app.before_request(_refuse_unusable_json)


def _refuse_unusable_json():
    if not request.is_json:
        return None
    body = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH; the parsers read this same cache
    # Two scans in C first: a body with few brackets and no surrogate escape needs no second parse.
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH and not _SURROGATE_ESCAPE.search(body):
        return None
    problem = unusable_json(body)
    if problem is None:
        return None
    return error_body("invalid_json", f"the request body is not usable JSON: {problem}"), 400


def unusable_json(body: bytes | str) -> str | None:
    """Why `body` parses but must not be used, or None (also when it does not parse: the parsers refuse it)."""
    try:
        data = json.loads(body)
    except RecursionError:
        return f"nested deeper than {MAX_DEPTH} levels"
    except ValueError:
        return None
    pending = [(data, 1)]
    while pending:  # a loop, not recursion: the point is to survive what recursion does not
        value, depth = pending.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return "a \\ud800-\\udfff escape that is not half of a surrogate pair"
        elif isinstance(value, (list, dict)):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                value = value.values()
            pending.extend((item, depth + 1) for item in value)
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
