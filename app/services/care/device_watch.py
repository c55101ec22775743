"""Devices silent past their interval or low on battery: a "device offline" ticket and notices, once per outage."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select, update

from app.core.config import setting
from app.core.extensions import db
from app.models import DeviceHealth, HelpDevice, Resident
from app.models.base import utcnow
from app.services import residents, tickets
from app.services.care import texts
from app.services.care.family import tell_contacts
from app.services.care.heartbeats import ensure_watched

log = logging.getLogger(__name__)

# A heartbeat a little late is not an outage: network retries, a device's clock running slow.
HEARTBEAT_GRACE = timedelta(seconds=60)
OUTAGE_CATEGORY = "device_offline"
# An outage still untold this long after it opened lost its notice with its process (the opener tells at once).
NOTICE_LOST_AFTER = timedelta(seconds=60)


def _silent(now: datetime):
    last = func.coalesce(DeviceHealth.last_heartbeat_at, DeviceHealth.watched_since)
    return last < literal(now - HEARTBEAT_GRACE) - DeviceHealth.interval_seconds * literal(timedelta(seconds=1))


def _low_battery():
    return and_(DeviceHealth.battery.is_not(None), DeviceHealth.battery < setting("DEVICE_LOW_BATTERY_PERCENT"))


def sweep(*, now: datetime | None = None) -> dict:
    """Open an outage for every device newly silent or low; each outage opens one ticket and tells the contacts."""
    now = now or utcnow()
    ensure_watched(now)
    candidates = db.session.execute(
        select(DeviceHealth.device_id, _low_battery()).join(HelpDevice, HelpDevice.id == DeviceHealth.device_id)
        .where(HelpDevice.active.is_(True), DeviceHealth.outage_started_at.is_(None),
               or_(_silent(now), _low_battery()))
    ).all()
    db.session.rollback()
    opened = sum(1 for device_id, low in candidates
                 if start_outage(device_id=device_id, reason="battery" if low else "silent", now=now))
    linked = _link_lost_tickets(now)
    retold = _tell_untold(now)
    if opened or linked or retold:
        log.info("device watch: %s outages opened, %s tickets linked, %s outages' contacts told late",
                 opened, linked, retold)
    return {"opened": opened, "linked": linked, "retold": retold}


def start_outage(*, device_id: int, reason: str, now: datetime) -> bool:
    """Mark the outage (compare-and-set: once per outage) and open its ticket in the same commit; then tell the
    contacts. The outage commits with `outage_notified_at` empty: if this process dies before the notice is done,
    the next sweep tells them (_tell_untold)."""
    condition = _low_battery() if reason == "battery" else _silent(now)
    won = db.session.execute(
        update(DeviceHealth)
        .where(DeviceHealth.device_id == device_id, DeviceHealth.outage_started_at.is_(None), condition)
        .values(outage_started_at=now, outage_reason=reason, outages=DeviceHealth.outages + 1,
                outage_notified_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not won:
        db.session.rollback()  # a heartbeat came in, or another sweeper opened it
        return False
    device = db.session.get(HelpDevice, device_id)
    resident = db.session.get(Resident, device.resident_id)
    ticket = _open_ticket(resident, reason, device, now)  # commits the outage mark with the ticket
    db.session.execute(update(DeviceHealth).where(DeviceHealth.device_id == device_id)
                       .values(outage_ticket_id=ticket.id).execution_options(synchronize_session=False))
    db.session.commit()
    tell_outage(device_id=device_id, now=now)
    return True


def tell_outage(*, device_id: int, now: datetime | None = None) -> bool:
    """Tell the family contacts of the device's open outage, once: False if it is over or they were told.

    notify_contact's dedup key is the outage's (device, start), so a retry after a crash mid-way sends nothing twice
    that was sent; the mark is set after the notices (at least once: never an outage nobody hears of).
    """
    now = now or utcnow()
    health = db.session.get(DeviceHealth, device_id)
    if health is None or health.outage_started_at is None or health.outage_notified_at is not None:
        db.session.rollback()
        return False
    started, reason = health.outage_started_at, health.outage_reason
    resident = db.session.get(Resident, db.session.get(HelpDevice, device_id).resident_id)
    tell_contacts(resident=resident, body=texts.outage_contact(resident, reason),
                  event=f"求助按钮{texts.REASONS[reason]}",
                  dedup_key=f"device-offline:{device_id}:{int(started.timestamp())}", now=started)
    db.session.execute(update(DeviceHealth)
                       .where(DeviceHealth.device_id == device_id, DeviceHealth.outage_started_at == started,
                              DeviceHealth.outage_notified_at.is_(None))
                       .values(outage_notified_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return True


def _tell_untold(now: datetime) -> int:
    """Outages whose notice was lost (the process died after the outage's commit): tell their contacts now."""
    untold = db.session.scalars(
        select(DeviceHealth.device_id).where(DeviceHealth.outage_started_at.is_not(None),
                                             DeviceHealth.outage_started_at <= now - NOTICE_LOST_AFTER,
                                             DeviceHealth.outage_notified_at.is_(None))
        .order_by(DeviceHealth.outage_started_at).limit(500)
    ).all()
    db.session.rollback()
    return sum(1 for device_id in untold if tell_outage(device_id=device_id, now=now))


def _open_ticket(resident: Resident, reason: str, device: HelpDevice, now: datetime):
    return tickets.open_ticket(
        street_id=residents.street_of(resident), source="help_alert", priority="high", category=OUTAGE_CATEGORY,
        subject=texts.outage_subject(resident, reason), resident_id=resident.id, now=now,
        body=f"设备 {device.device_uid}：{texts.REASONS[reason]}，请上门检查或联系家属",
    )


def _link_lost_tickets(now: datetime) -> int:
    """An outage whose process died between its commit and linking the ticket: link the ticket it opened."""
    from app.models import Ticket

    lost = db.session.scalars(select(DeviceHealth).where(DeviceHealth.outage_started_at.is_not(None),
                                                         DeviceHealth.outage_ticket_id.is_(None))).all()
    for health in lost:
        device = db.session.get(HelpDevice, health.device_id)
        health.outage_ticket_id = db.session.scalar(
            select(Ticket.id).where(Ticket.resident_id == device.resident_id, Ticket.category == OUTAGE_CATEGORY)
            .order_by(Ticket.id.desc()).limit(1))
    db.session.commit()
    return len(lost)


def devices_of_street(*, street_id: int, now: datetime | None = None) -> list[dict]:
    """Every active help button of the street's residents with its last heartbeat, battery and outage."""
    now = now or utcnow()
    rows = db.session.execute(
        select(HelpDevice, DeviceHealth, Resident)
        .join(Resident, Resident.id == HelpDevice.resident_id)
        .outerjoin(DeviceHealth, DeviceHealth.device_id == HelpDevice.id)
        .where(HelpDevice.active.is_(True), HelpDevice.resident_id.in_(residents.residents_of_street(street_id=street_id)))
        .order_by(DeviceHealth.outage_started_at.desc().nulls_last(), Resident.name)
    ).all()
    return [{
        "device_uid": device.device_uid,
        "resident": resident.name,
        "last_heartbeat_at": _iso(health.last_heartbeat_at if health else None),
        "battery": health.battery if health else None,
        "outage": texts.REASONS[health.outage_reason] if health and health.outage_reason else None,
        "outage_since": _iso(health.outage_started_at if health else None),
    } for device, health, resident in rows]


def _iso(value):
    return value.isoformat() if value else None
