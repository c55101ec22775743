"""Builders of the authorization tests (no tests here): two streets, each with a resident who has everything a
resident can own, staff and an admin; the routes of `app.url_map` turned into URLs; a snapshot of one side's rows.

Every name a side owns carries its marker (`MARKS`), ASCII so it survives JSON's \\u escapes: a page or answer
shown to street A that contains street B's marker leaked B's data.
"""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.core.extensions import db
from app.models import (
    Appointment,
    HelpAlert,
    HelpContact,
    OutboundMessage,
    Patient,
    SlotHold,
    Staff,
    Ticket,
    TicketEvent,
    WaitlistEntry,
)
from app.models.base import utcnow
from app.models.mobile import HelpDelegate, RequestPhoto, ResidentRequest
from app.seed import demo_id_number
from app.services import help as help_service
from app.services import tickets
from app.services.booking import appointments as booking
from app.services.booking import holds, waitlist
from app.services.booking.calendar import SHANGHAI, local_day
from app.services.residents import auth as resident_auth
from tests.factories import (
    ChannelIdentityFactory,
    CommunityFactory,
    ConversationFactory,
    DoctorFactory,
    HelpContactFactory,
    PatientFactory,
    ResidentFactory,
    SlotFactory,
    StaffFactory,
    StreetFactory,
)
from tests.helpers.mobile import image_bytes
from tests.integration.test_console_auth import csrf_from

MARKS = {"a": "MARKA", "b": "MARKB"}
# The family members' ID numbers, so a test can register the same person under another resident.
FAMILY_ID_NUMBERS = {"a": demo_id_number("19450101", "011"), "b": demo_id_number("19460202", "022")}
# An id no row has: what a refusal of another's id must look exactly like.
MISSING_ID = 2_000_000_000
# Few hash rounds: the tests sign staff in many times, and the strength of the hash is not under test there.
PASSWORD = "correct horse"
CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def two_streets() -> dict[str, dict]:
    """Streets "a" and "b", committed. Their residents book in the same department on the same days (hospitals
    serve every street), so only the street can tell their rows apart on the console's schedule.

    Photos are stored through the app's storage: use the `storage` fixture.
    """
    doctor = DoctorFactory()
    visit_day = datetime.now(SHANGHAI).date() + timedelta(days=3)
    visit = SlotFactory(doctor=doctor, day=visit_day, at=time(9), capacity=4)
    # Another department's day with its one seat taken (by street a): both residents wait in its line.
    full = SlotFactory(doctor=DoctorFactory(), day=visit_day, at=time(9), capacity=1)
    # Began an hour ago, on whatever Shanghai day that is: staff can mark it attended or missed.
    began = utcnow() - timedelta(hours=1)
    today = SlotFactory(doctor=doctor, day=local_day(began), start_at=began, end_at=began + timedelta(minutes=30),
                        capacity=2)
    db.session.commit()
    made = {}
    for seat_no, side in enumerate(("a", "b"), start=1):
        mark = MARKS[side]
        digit = "7" if side == "a" else "8"
        street = StreetFactory(name=f"街道{mark}")
        community = CommunityFactory(street=street, name=f"社区{mark}")
        resident = ResidentFactory(community=community, is_elderly=True, name=f"居民{mark}",
                                   phone=f"+86137{digit}0000001")
        openid = f"oAuthz{side}{mark}0001"
        ChannelIdentityFactory(resident=resident, channel="wechat", external_id=openid)
        ChannelIdentityFactory(resident=resident, channel="sms", external_id=resident.phone)
        conversation = ConversationFactory(resident=resident, channel="wechat", address=openid)
        db.session.add(OutboundMessage(conversation_id=conversation.id, channel="wechat", to_address=openid,
                                       body=f"通知{mark}", kind="notice", status="sent"))
        own = PatientFactory(resident=resident, relation="self", name=f"本人{mark}")
        family = PatientFactory(resident=resident, relation="parent", name=f"家属{mark}",
                                phone=f"+86136{digit}0000002", id_number=FAMILY_ID_NUMBERS[side])
        contact = HelpContactFactory(resident_id=resident.id, position=1, name=f"联系人{mark}",
                                     phone=f"+86135{digit}0000003")
        delegate = HelpDelegate(resident_id=resident.id, phone=f"+86139{digit}0000009", name=f"代理{mark}")
        staff = StaffFactory(street=street, role="staff", password_hash=CHEAP_HASH, display_name=f"职员{mark}")
        admin = StaffFactory(street=street, role="admin", password_hash=CHEAP_HASH, display_name=f"组长{mark}")
        spare = SlotFactory(doctor=doctor, day=visit_day, at=time(10 + seat_no), capacity=2)
        db.session.add(delegate)
        # Written directly: booking refuses a slot that has begun, which marking attendance needs.
        today.booked_count += 1
        visit_today = Appointment(slot_id=today.id, seat_no=seat_no, patient_id=family.id,
                                  booked_by_resident_id=resident.id, department_id=today.department_id,
                                  local_date=today.local_date, status="booked")
        db.session.add(visit_today)
        db.session.commit()
        appointment = booking.book_slot(resident_id=resident.id, slot_id=visit.id, patient_id=family.id)
        if side == "a":
            booking.book_slot(resident_id=resident.id, slot_id=full.id, patient_id=family.id)
        entry = waitlist.join_waitlist(resident_id=resident.id, department_id=full.department_id, day=visit_day,
                                       patient_id=own.id)
        hold = holds.hold_slot(resident_id=resident.id, slot_id=spare.id, patient_id=own.id)
        ticket = tickets.open_ticket(street_id=street.id, source="resident", subject=f"工单{mark}",
                                     resident_id=resident.id, body=f"正文{mark}")
        alert = help_service.raise_alert(resident_id=resident.id, source="api")
        attached = tickets.upload_photo(resident_id=resident.id, data=image_bytes())
        loose = tickets.upload_photo(resident_id=resident.id, data=image_bytes())
        filed = tickets.report(resident_id=resident.id, category="other", text=f"诉求{mark}路灯不亮",
                               photo_ids=[attached.id], pole_number="A-0001")
        made[side] = {
            "mark": mark, "street_id": street.id, "community_id": community.id, "resident_id": resident.id,
            "phone": resident.phone, "openid": openid, "patient_id": family.id, "own_patient_id": own.id,
            "family_phone": family.phone,
            "contact_id": contact.id, "delegate_id": delegate.id, "staff": staff.username, "staff_id": staff.id,
            "admin": admin.username, "admin_id": admin.id, "appointment_id": appointment.id,
            "today_appointment_id": visit_today.id, "day": today.local_date, "today": local_day(utcnow()),
            "spare_slot_id": spare.id,
            "ticket_id": ticket.id, "alert_id": alert.id, "alert_ticket_id": alert.ticket_id,
            "request_id": filed.id, "request_ticket_id": filed.ticket_id, "photo_id": attached.id,
            "loose_photo_id": loose.id, "hold_id": hold.id, "entry_id": entry.id,
            "full_department_id": full.department_id, "visit_day": visit_day,
        }
    return made


def resident_headers(resident_id: int) -> dict:
    """A fresh access token of the resident (an SMS sign-in's session, without the SMS)."""
    token = resident_auth.open_session(resident_id=resident_id, method="sms").access_token
    return {"Authorization": f"Bearer {token}"}


def sign_in_console(client, username: str) -> None:
    response = client.post("/console/login", data={"username": username, "password": PASSWORD,
                                                   "csrf_token": csrf_from(client)})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def console_csrf(client) -> str:
    """The CSRF token of the signed-in session (from a page's meta tag)."""
    return csrf_from(client, "/console/queue")


def build_url(rule, values: dict) -> str:
    """The rule's path with each <converter:name> replaced by values[name]."""
    missing = set(rule.arguments) - set(values)
    if missing:
        raise AssertionError(f"{rule.rule}: no value for {sorted(missing)}; add one to the test's world")
    return re.sub(r"<(?:[a-z]+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule)


def has_id(rule) -> bool:
    """Whether the rule takes an integer from the path (an id of some row)."""
    return "<int:" in rule.rule


def methods(rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def rows_of(side: dict) -> dict:
    """Everything of one side's resident and street that a refused request must leave exactly as it was."""
    db.session.expire_all()
    resident_id, street_id = side["resident_id"], side["street_id"]

    def rows(*columns, where, order):
        return tuple(db.session.execute(select(*columns).where(where).order_by(order)).all())

    ticket_ids = select(Ticket.id).where(Ticket.street_id == street_id)
    return {
        "patients": rows(Patient.id, Patient.name, Patient.relation, Patient.phone, Patient.id_number_hash,
                         Patient.removed_at, Patient.suspended_until, where=Patient.resident_id == resident_id,
                         order=Patient.id),
        "appointments": rows(Appointment.id, Appointment.slot_id, Appointment.patient_id, Appointment.status,
                             Appointment.marked_at, where=Appointment.booked_by_resident_id == resident_id,
                             order=Appointment.id),
        "holds": rows(SlotHold.id, SlotHold.slot_id, SlotHold.status, where=SlotHold.resident_id == resident_id,
                      order=SlotHold.id),
        "waitlist": rows(WaitlistEntry.id, WaitlistEntry.status, where=WaitlistEntry.resident_id == resident_id,
                         order=WaitlistEntry.id),
        "requests": rows(ResidentRequest.id, ResidentRequest.rating_comment,
                         where=ResidentRequest.resident_id == resident_id, order=ResidentRequest.id),
        "photos": rows(RequestPhoto.id, RequestPhoto.request_id, where=RequestPhoto.resident_id == resident_id,
                       order=RequestPhoto.id),
        "delegates": rows(HelpDelegate.id, HelpDelegate.phone, where=HelpDelegate.resident_id == resident_id,
                          order=HelpDelegate.id),
        "contacts": rows(HelpContact.id, HelpContact.name, HelpContact.phone, HelpContact.position,
                         HelpContact.channels, where=HelpContact.resident_id == resident_id, order=HelpContact.id),
        "alerts": rows(HelpAlert.id, HelpAlert.status, HelpAlert.accepted_staff_id, HelpAlert.round,
                       where=HelpAlert.resident_id == resident_id, order=HelpAlert.id),
        "tickets": rows(Ticket.id, Ticket.status, Ticket.priority, Ticket.category, Ticket.assignee_id,
                        Ticket.csat_score, where=Ticket.street_id == street_id, order=Ticket.id),
        "events": rows(TicketEvent.id, where=TicketEvent.ticket_id.in_(ticket_ids), order=TicketEvent.id),
        "staff": rows(Staff.id, Staff.on_duty, where=Staff.street_id == street_id, order=Staff.id),
        "outbox": rows(OutboundMessage.id, where=OutboundMessage.to_address.in_((side["openid"], side["phone"])),
                       order=OutboundMessage.id),
    }
