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
    if opened or linked:
        log.info("device watch: %s outages opened, %s tickets linked", opened, linked)
    return {"opened": opened, "linked": linked}


def start_outage(*, device_id: int, reason: str, now: datetime) -> bool:
    """Mark the outage (compare-and-set: once per outage) and open its ticket in the same commit."""
    condition = _low_battery() if reason == "battery" else _silent(now)
    won = db.session.execute(
        update(DeviceHealth)
        .where(DeviceHealth.device_id == device_id, DeviceHealth.outage_started_at.is_(None), condition)
        .values(outage_started_at=now, outage_reason=reason, outages=DeviceHealth.outages + 1)
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
    tell_contacts(resident=resident, body=texts.outage_contact(resident, reason),
                  event=f"求助按钮{texts.REASONS[reason]}", dedup_key=f"device-offline:{device_id}:{int(now.timestamp())}",
                  now=now)
    return True


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
