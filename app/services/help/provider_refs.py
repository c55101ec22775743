"""The reference a help call carries through a provider that reports back later (Aliyun's OutId).

`<attempt id>.<HMAC-SHA256 under SECRET_KEY, 16 hex>`: Aliyun echoes it in every report of the call, and
its push is unsigned, so this MAC is what proves a report is about a call this app placed.
"""
from __future__ import annotations

import hashlib
import hmac

from app.core.config import setting


def _mac(attempt_id: int) -> str:
    key = setting("SECRET_KEY").encode()
    return hmac.new(key, f"help-call:{attempt_id}".encode(), hashlib.sha256).hexdigest()[:16]


def call_ref(attempt_id: int) -> str:
    return f"{attempt_id}.{_mac(attempt_id)}"


def attempt_of_ref(ref: str) -> int | None:
    """The attempt id in a reference we signed; None for anything else."""
    head, _, mac = (ref or "").partition(".")
    if not head.isdigit() or len(head) > 18:
        return None
    return int(head) if hmac.compare_digest(mac.encode(), _mac(int(head)).encode()) else None
