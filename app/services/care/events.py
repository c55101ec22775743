"""Timeline entries elder care writes on tickets (a device's outage ticket)."""
from __future__ import annotations

from datetime import datetime

from app.core.extensions import db
from app.models import DeviceHealth
from app.services import tickets
from app.services.care import texts


def device_recovered(health: DeviceHealth, *, now: datetime) -> None:
    """The outage is over: noted on its ticket (left for staff to close), and the device may have a next one."""
    if health.outage_ticket_id is not None:
        tickets.add_event(ticket_id=health.outage_ticket_id, kind="note", body=texts.recovered(health.battery),
                          data={"device_id": health.device_id, "recovered": True}, commit=False)
    health.outage_started_at = None
    health.outage_reason = None
    health.outage_ticket_id = None
    db.session.commit()
