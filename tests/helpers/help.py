"""Shared fixtures and builders of the help tests (no tests here).

The help tests commit for real and empty the tables around each test (`help_db`): the services own
their commits, several tests use threads and processes, and the sweeper must not see another
test's alerts.
"""
from __future__ import annotations

from app.core.extensions import db
from app.models import HelpContact
from app.services.help import devices as help_devices
from tests.factories import ResidentFactory


def add_contact(resident_id, position, *, phone="auto", channels="voice,sms", relation="family", name=None,
                **extra) -> HelpContact:
    # Built here, not with HelpContactFactory: its `resident = None` declaration breaks construction.
    phone = f"+86137{resident_id:04d}{position:04d}" if phone == "auto" else phone
    contact = HelpContact(resident_id=resident_id, position=position, name=name or f"联系人{position}", phone=phone,
                          channels=channels, relation=relation, ring_seconds=30, wait_seconds=60, **extra)
    db.session.add(contact)
    db.session.commit()
    return contact


def make_chain(n=3, channels="voice,sms", **resident):
    """An elderly resident and a chain of n contacts, the last being the on-duty staff group."""
    elder = ResidentFactory(is_elderly=True, **resident)
    db.session.commit()
    contacts = [add_contact(elder.id, i + 1, channels=channels, relation="staff" if i == n - 1 else "family")
                for i in range(n)]
    return elder, contacts


def make_device(resident_id: int, device_uid: str = "DEV-H0001") -> tuple[str, str]:
    device, secret = help_devices.register_device(device_uid=device_uid, resident_id=resident_id)
    return device.device_uid, secret
