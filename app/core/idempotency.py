"""Idempotency keys for the mobile API's writes: a retried request gets the first one's answer, once.

A key is reserved (committed) before the write runs, so a concurrent duplicate sees it in progress
instead of writing twice. Only successful answers are stored: a refused write changed nothing, so
its retry may simply run again. Keys are scoped per resident and live for KEY_TTL.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.models import IdempotencyRecord
from app.models.base import utcnow

KEY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def fingerprint(*parts: bytes | str) -> str:
    """What makes two requests "the same": the caller passes method, path and a canonical body."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)  # length-prefixed: no ambiguity by joining
    return digest.hexdigest()


def reserve(*, resident_id: int, key: str, fingerprint: str, now: datetime | None = None) -> int | Replay:
    """The reservation's id to complete later, or the stored answer of an earlier identical request."""
    now = now or utcnow()
    for _ in range(2):
        record = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.resident_id == resident_id,
                                                                   IdempotencyRecord.key == key))
        if record is not None and record.expires_at <= now:
            db.session.delete(record)
            db.session.flush()
            record = None
        if record is not None:
            return _existing(record, fingerprint)
        record = IdempotencyRecord(resident_id=resident_id, key=key, fingerprint=fingerprint, state="in_progress",
                                   created_at=now, expires_at=now + KEY_TTL)
        db.session.add(record)
        try:
            db.session.commit()
        except IntegrityError:  # the same key arrived twice at once; the other one reserved it
            db.session.rollback()
            continue
        return record.id
    raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_key_in_use")


def complete(*, record_id: int, status: int, body: str) -> None:
    record = db.session.get(IdempotencyRecord, record_id)
    if record is not None:
        record.state, record.response_status, record.response_body = "done", status, body
        db.session.commit()


def release(*, record_id: int) -> None:
    """Forget a reservation whose write failed, so the client's retry runs it afresh."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id,
                                                       IdempotencyRecord.state == "in_progress"))
    db.session.commit()


def purge_expired(*, now: datetime | None = None) -> int:
    removed = db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= (now or utcnow())))
    db.session.commit()
    return removed.rowcount


def _existing(record: IdempotencyRecord, fingerprint: str) -> Replay:
    if record.fingerprint != fingerprint:
        raise ValidationFailed("this Idempotency-Key was used for a different request",
                               code="idempotency_key_reused")
    if record.state != "done":
        # Also the state after a crash between the write and storing its answer: refusing is safe,
        # running the write again is not.
        raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_key_in_use")
    return Replay(status=record.response_status, body=record.response_body)
