"""factory_boy factories for test data, bound to whatever db.session the test runs in."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import factory
from werkzeug.security import generate_password_hash

from app.core.extensions import db
from app.core.secrets_at_rest import encrypt, keyed_hash
from app.models import (
    ChannelIdentity,
    Community,
    Conversation,
    Department,
    Doctor,
    FaqArticle,
    HelpContact,
    HelpDevice,
    Hospital,
    Patient,
    Resident,
    Slot,
    Staff,
    Street,
    Ticket,
)
from app.seed import demo_id_number

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731 (the test's session, looked up late)
        sqlalchemy_session_persistence = "flush"


class StreetFactory(Base):
    class Meta:
        model = Street

    code = factory.Sequence(lambda n: f"street{n}")
    name = factory.Sequence(lambda n: f"第{n}街道")


class CommunityFactory(Base):
    class Meta:
        model = Community

    street = factory.SubFactory(StreetFactory)
    name = factory.Sequence(lambda n: f"第{n}社区")


class ResidentFactory(Base):
    class Meta:
        model = Resident

    community = factory.SubFactory(CommunityFactory)
    name = factory.Sequence(lambda n: f"居民{n}")
    phone = factory.Sequence(lambda n: f"+86139{n:08d}")
    address = "幸福路1号"


class ChannelIdentityFactory(Base):
    class Meta:
        model = ChannelIdentity

    resident = factory.SubFactory(ResidentFactory)
    channel = "wechat"
    external_id = factory.Sequence(lambda n: f"openid-{n}")


class ConversationFactory(Base):
    class Meta:
        model = Conversation

    resident = factory.SubFactory(ResidentFactory)
    channel = "wechat"
    address = factory.Sequence(lambda n: f"openid-c{n}")
    bot_sender = factory.Sequence(lambda n: f"test-conv-{n}")


def _id_number(n: int) -> str:
    return demo_id_number("19600101", f"{n % 1000:03d}")


class PatientFactory(Base):
    class Meta:
        model = Patient
        exclude = ("id_number",)

    resident = factory.SubFactory(ResidentFactory)
    name = factory.Sequence(lambda n: f"病人{n}")
    relation = "self"
    id_number = factory.Sequence(_id_number)
    id_number_encrypted = factory.LazyAttribute(lambda o: encrypt(o.id_number))
    id_number_hash = factory.LazyAttribute(lambda o: keyed_hash(o.id_number))
    id_number_last4 = factory.LazyAttribute(lambda o: o.id_number[-4:])


class HospitalFactory(Base):
    class Meta:
        model = Hospital

    name = factory.Sequence(lambda n: f"第{n}医院")


class DepartmentFactory(Base):
    class Meta:
        model = Department

    hospital = factory.SubFactory(HospitalFactory)
    name = factory.Sequence(lambda n: f"科室{n}")


class DoctorFactory(Base):
    class Meta:
        model = Doctor

    department = factory.SubFactory(DepartmentFactory)
    name = factory.Sequence(lambda n: f"医生{n}")
    title = "普通"


def local_dt(day: date, at: time) -> datetime:
    return datetime.combine(day, at, SHANGHAI).astimezone(timezone.utc)


class SlotFactory(Base):
    class Meta:
        model = Slot
        exclude = ("day", "at")

    doctor = factory.SubFactory(DoctorFactory)
    department = factory.SelfAttribute("doctor.department")
    day = factory.LazyFunction(lambda: date.today() + timedelta(days=2))
    at = time(9, 0)
    local_date = factory.SelfAttribute("day")
    session = "morning"
    start_at = factory.LazyAttribute(lambda o: local_dt(o.day, o.at))
    end_at = factory.LazyAttribute(lambda o: o.start_at + timedelta(minutes=30))
    capacity = 3
    booked_count = 0


class StaffFactory(Base):
    class Meta:
        model = Staff
        exclude = ("password",)

    street = factory.SubFactory(StreetFactory)
    username = factory.Sequence(lambda n: f"staff{n}")
    display_name = factory.Sequence(lambda n: f"工作人员{n}")
    password = "correct horse"
    password_hash = factory.LazyAttribute(lambda o: generate_password_hash(o.password))
    role = "staff"
    on_duty = True


class TicketFactory(Base):
    class Meta:
        model = Ticket

    street = factory.SubFactory(StreetFactory)
    source = "bot"
    subject = "需要人工"


class HelpDeviceFactory(Base):
    class Meta:
        model = HelpDevice
        exclude = ("secret",)

    device_uid = factory.Sequence(lambda n: f"DEV-T{n:04d}")
    resident_id = factory.LazyAttribute(lambda o: ResidentFactory(is_elderly=True).id)
    secret = "device-secret"
    secret_encrypted = factory.LazyAttribute(lambda o: encrypt(o.secret))


class HelpContactFactory(Base):
    class Meta:
        model = HelpContact

    resident_id = factory.LazyFunction(lambda: ResidentFactory(is_elderly=True).id)
    position = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"联系人{n}")
    phone = factory.Sequence(lambda n: f"+86137{n:08d}")
    relation = "family"


class FaqArticleFactory(Base):
    class Meta:
        model = FaqArticle

    topic = factory.Sequence(lambda n: f"topic_{n}")
    title = "标题"
    answer = "答案"
