"""`flask seed-demo` gives a newcomer a street to try the whole product on."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from app.core.extensions import db
from app.core.secrets_at_rest import decrypt
from app.models import (
    ChannelIdentity,
    Community,
    Department,
    FaqArticle,
    HelpContact,
    HelpDevice,
    Patient,
    Slot,
    Staff,
    Street,
)
from app.seed import seed_demo
from app.services.residents import id_numbers


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_seed_demo_builds_the_demo_street_once(session):
    assert seed_demo() is True
    assert seed_demo() is False  # a second run changes nothing
    assert count(Street) == 1 and count(Community) == 2
    assert count(Department) >= 6
    last_slot_day = db.session.scalar(select(func.max(Slot.local_date)))
    assert last_slot_day >= date.today() + timedelta(days=12)
    assert count(ChannelIdentity, ChannelIdentity.channel == "wechat") >= 2
    assert count(ChannelIdentity, ChannelIdentity.channel == "sms") >= 2
    assert count(HelpDevice) == 1 and count(HelpContact) >= 3
    assert count(Staff) == 2
    assert count(FaqArticle) >= 30


def test_seeded_id_numbers_are_valid_and_stored_encrypted(session):
    seed_demo()
    for patient in db.session.scalars(select(Patient)):
        plain = decrypt(patient.id_number_encrypted)
        assert id_numbers.is_valid(plain)
        assert plain not in patient.id_number_encrypted
        assert plain.endswith(patient.id_number_last4)
