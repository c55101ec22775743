"""A street with departments for the work-order tests: a dispatcher, two departments (物业 led by a lead with a
phone, 城管), a team lead (admin), and a second street with a department of its own."""
from __future__ import annotations

from types import SimpleNamespace

from app.core.extensions import db
from app.models import Ticket
from app.services import workorders
from tests.factories import StaffFactory, StreetFactory

LEAD_PHONE = "+8613700000001"


def build_world() -> SimpleNamespace:
    street, other = StreetFactory(), StreetFactory()
    admin = StaffFactory(street=street, role="admin", display_name="组长")
    dispatcher = StaffFactory(street=street, display_name="受理员")
    lead = StaffFactory(street=street, display_name="物业经理", phone=LEAD_PHONE)
    member = StaffFactory(street=street, display_name="物业维修工")
    city = StaffFactory(street=street, display_name="城管队员")
    other_admin = StaffFactory(street=other, role="admin")
    db.session.commit()
    property_ = workorders.create_department(actor=admin, name="物业", lead_id=lead.id)
    workorders.add_member(actor=admin, department_id=property_.id, staff_id=member.id)
    urban = workorders.create_department(actor=admin, name="城管")
    workorders.add_member(actor=admin, department_id=urban.id, staff_id=city.id, lead=True)
    foreign = workorders.create_department(actor=other_admin, name="物业")
    return SimpleNamespace(street=street, other=other, admin=admin, dispatcher=dispatcher, lead=lead, member=member,
                           city=city, other_admin=other_admin, property=property_, urban=urban, foreign=foreign)


def open_ticket(street, **kwargs):
    ticket = Ticket(street_id=street.id, source="staff", subject=kwargs.pop("subject", "路灯不亮"), **kwargs)
    db.session.add(ticket)
    db.session.commit()
    return ticket
