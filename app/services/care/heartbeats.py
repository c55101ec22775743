"""Signed heartbeats of help buttons: the same HMAC scheme and replay window as presses (help.devices)."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core.config import setting
from app.core.errors import Conflict
from app.core.extensions import db
from app.models import DeviceHealth, HelpDevice
from app.models.base import utcnow
from app.services import help as help_service
from app.services.care.events import device_recovered


def canonical_heartbeat(device_uid: str, battery: int, interval_seconds: int | None, timestamp: int) -> str:
    """What a device signs for a heartbeat. It starts with "heartbeat", a line no press starts with (a press starts
    with the device id), so a captured heartbeat can never be replayed as a press, nor the other way round."""
    return f"heartbeat\n{device_uid}\n{battery}\n{interval_seconds or ''}\n{timestamp}"


def sign_heartbeat(secret: str, device_uid: str, battery: int, interval_seconds: int | None, timestamp: int) -> str:
    return hmac.new(secret.encode(), canonical_heartbeat(device_uid, battery, interval_seconds, timestamp).encode(),
                    hashlib.sha256).hexdigest()


def record_heartbeat(*, device_uid: str, battery: int, timestamp: int, signature: str,
                     interval_seconds: int | None = None, now: datetime | None = None) -> DeviceHealth:
    """A signed heartbeat: checked (signature, window), then stored only if newer than the last one accepted.

    A replay inside the window carries a timestamp not newer than the stored one: refused, nothing written.
    """
    now = now or utcnow()
    device = help_service.authenticate_device(
        device_uid=device_uid, message=canonical_heartbeat(device_uid, battery, interval_seconds, timestamp),
        signature=signature, timestamp=timestamp, now=now)
    values = {"last_heartbeat_at": now, "last_device_ts": timestamp, "battery": battery}
    if interval_seconds:
        values["interval_seconds"] = interval_seconds
    for _ in range(2):
        stored = db.session.execute(
            update(DeviceHealth)
            .where(DeviceHealth.device_id == device.id,
                   or_(DeviceHealth.last_device_ts.is_(None), DeviceHealth.last_device_ts < timestamp))
            .values(**values).execution_options(synchronize_session=False)
        ).rowcount
        if stored:
            break
        if db.session.get(DeviceHealth, device.id) is not None:
            db.session.rollback()
            raise Conflict("this heartbeat is not newer than the last one", code="replayed_heartbeat")
        try:
            with db.session.begin_nested():
                db.session.add(DeviceHealth(device_id=device.id, watched_since=device.created_at or now, outages=0,
                                            interval_seconds=interval_seconds or setting("DEVICE_HEARTBEAT_SECONDS"),
                                            **{k: v for k, v in values.items() if k != "interval_seconds"}))
            break
        except IntegrityError:  # a concurrent first heartbeat: go round and compare with it
            continue
    health = db.session.get(DeviceHealth, device.id)
    db.session.refresh(health)
    if health.outage_started_at is not None and _healthy(health):
        device_recovered(health, now=now)  # commits
    db.session.commit()
    return health


def _healthy(health: DeviceHealth) -> bool:
    return health.battery is None or health.battery >= setting("DEVICE_LOW_BATTERY_PERCENT")


def ensure_watched(now: datetime) -> int:
    """A health row for every active device never heard from, so its silence counts from its registration."""
    missing = db.session.scalars(
        select(HelpDevice).outerjoin(DeviceHealth, DeviceHealth.device_id == HelpDevice.id)
        .where(HelpDevice.active.is_(True), DeviceHealth.device_id.is_(None))
    ).all()
    added = 0
    for device in missing:
        try:
            with db.session.begin_nested():
                db.session.add(DeviceHealth(device_id=device.id, watched_since=device.created_at or now, outages=0,
                                            interval_seconds=setting("DEVICE_HEARTBEAT_SECONDS")))
            added += 1
        except IntegrityError:  # its first heartbeat came in meanwhile
            continue
    db.session.commit()
    return added
