"""Demo data for `flask seed-demo`: one street, a health centre, residents, an elderly resident's chain, staff."""
from __future__ import annotations

import os
from datetime import date, time

import yaml
from flask import current_app
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.core.errors import Forbidden
from app.core.extensions import db
from app.core.secrets_at_rest import encrypt, keyed_hash
from app.models import (
    CannedReply,
    ChannelIdentity,
    Community,
    Department,
    Doctor,
    HelpContact,
    HelpDevice,
    Hospital,
    Patient,
    Resident,
    Schedule,
    Staff,
    Street,
)
from app.services import booking, knowledge
from app.services.residents import check_char

DEMO_STREET_CODE = "xingfu"
DEPARTMENTS = {
    "全科": [("陈立新", "普通"), ("刘芳", "专家")],
    "内科": [("赵建国", "普通"), ("孙丽", "专家")],
    "外科": [("周强", "普通")],
    "儿科": [("吴晓红", "普通"), ("郑敏", "专家")],
    "口腔科": [("冯涛", "普通")],
    "中医科": [("何仁", "专家")],
    "眼科": [("许明亮", "普通")],
}
FAQ_FILE = os.path.join(os.path.dirname(__file__), "seed_data", "faq.yml")


def demo_id_number(birth: str, serial: str) -> str:
    """A checksum-valid ID number for demo people (region 310101 = 上海 黄浦)."""
    first17 = "310101" + birth + serial
    return first17 + check_char(first17)


def seed_demo(*, staff_password: str = "linli-staff", admin_password: str = "linli-admin") -> bool:
    """Seed once; returns False when the demo street is already there. Refused in production (Forbidden)."""
    if current_app.extensions["linli_settings"].is_production:
        # Its logins and the help device's secret are printed in the README: in production they would be open doors.
        raise Forbidden("refusing to seed demo data in production: it creates public logins (admin / linli-admin, "
                        "staff / linli-staff) and a help device with a known secret. Create the first team lead "
                        "with `flask create-staff --username NAME --street CODE --street-name NAME --admin`.",
                        code="demo_seed_in_production")
    if db.session.scalar(select(Street).where(Street.code == DEMO_STREET_CODE)):
        return False
    street = Street(code=DEMO_STREET_CODE, name="幸福街道")
    sunny, peace = Community(street=street, name="阳光社区"), Community(street=street, name="和平社区")
    db.session.add_all([street, sunny, peace])
    _seed_hospital()
    db.session.flush()
    _seed_residents(sunny, peace)
    _seed_staff(street, staff_password, admin_password)
    db.session.commit()
    booking.generate_slots(start=date.today(), days=14)
    if os.path.exists(FAQ_FILE):
        with open(FAQ_FILE, encoding="utf-8") as fh:
            knowledge.upsert_articles(articles=yaml.safe_load(fh))
    return True


def _seed_hospital() -> None:
    hospital = Hospital(name="幸福社区卫生服务中心", address="幸福路88号")
    db.session.add(hospital)
    for dept_name, doctors in DEPARTMENTS.items():
        department = Department(hospital=hospital, name=dept_name)
        db.session.add(department)
        for doctor_name, title in doctors:
            doctor = Doctor(department=department, name=doctor_name, title=title)
            db.session.add(doctor)
            db.session.flush()
            for weekday in range(6):  # Monday to Saturday
                db.session.add_all([
                    Schedule(doctor_id=doctor.id, weekday=weekday, session="morning", start_time=time(8, 0),
                             end_time=time(11, 30), slot_minutes=30, capacity_per_slot=3),
                    Schedule(doctor_id=doctor.id, weekday=weekday, session="afternoon", start_time=time(13, 30),
                             end_time=time(16, 30), slot_minutes=30, capacity_per_slot=3),
                ])


def _person(community, name, phone, address, *, openid=None, elderly=False, id_number=None):
    resident = Resident(community=community, name=name, phone=phone, address=address, is_elderly=elderly,
                        preferred_channel="wechat" if openid else "sms")
    db.session.add(resident)
    if openid:
        db.session.add(ChannelIdentity(resident=resident, channel="wechat", external_id=openid))
    if phone:
        db.session.add(ChannelIdentity(resident=resident, channel="sms", external_id=phone))
    if id_number:
        db.session.add(Patient(resident=resident, name=name, relation="self", id_number_encrypted=encrypt(id_number),
                               id_number_hash=keyed_hash(id_number), id_number_last4=id_number[-4:], phone=phone))
    return resident


def _seed_residents(sunny: Community, peace: Community) -> None:
    zhang = _person(sunny, "张桂英", "+8613800000001", "阳光社区3号楼2单元501", openid="o_demo_zhang",
                    elderly=True, id_number=demo_id_number("19450312", "002"))
    _person(peace, "李建华", "+8613800000002", "和平社区12号楼101", id_number=demo_id_number("19580706", "013"))
    _person(sunny, "王小明", None, "阳光社区8号楼1203", openid="o_demo_wang",
            id_number=demo_id_number("19900101", "035"))
    db.session.flush()
    device_secret = os.environ.get("DEMO_DEVICE_SECRET", "demo-device-secret")
    db.session.add(HelpDevice(device_uid="DEV-0001", resident_id=zhang.id, secret_encrypted=encrypt(device_secret)))
    db.session.add_all([
        HelpContact(resident_id=zhang.id, position=1, name="儿子 张伟", phone="+8613800000011", relation="family"),
        HelpContact(resident_id=zhang.id, position=2, name="邻居 王师傅", phone="+8613800000012", relation="neighbour"),
        HelpContact(resident_id=zhang.id, position=3, name="网格员 李娜", phone="+8613800000013",
                    relation="grid_worker"),
        HelpContact(resident_id=zhang.id, position=4, name="街道值班室", phone="+8613800000099", relation="staff",
                    channels="voice"),
    ])


def _seed_staff(street: Street, staff_password: str, admin_password: str) -> None:
    db.session.add_all([
        Staff(street=street, username="admin", display_name="刘组长", role="admin",
              password_hash=generate_password_hash(admin_password), phone="+8613800000098", on_duty=True),
        Staff(street=street, username="staff", display_name="陈晓", role="staff",
              password_hash=generate_password_hash(staff_password), phone="+8613800000099", on_duty=True),
        CannedReply(street=street, code="hi", body="您好，我是街道工作人员，请问有什么可以帮您？"),
        CannedReply(street=street, code="wait", body="收到，我们正在处理，请稍等。"),
        CannedReply(street=street, code="bye", body="问题已处理，如还有需要请随时留言。祝您生活愉快！"),
    ])
