"""A small street whose every report figure was worked out by hand (see the comments), built in the
test's session on PostgreSQL or SQLite alike, and the checks both dialects must pass.

Range: 2024-05-01 .. 2024-05-03 (Asia/Shanghai). Street A has communities A1 (residents r1, r2) and
A2 (r3); street B (rB) writes and raises tickets in the same days and must never be counted.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy.orm import scoped_session, sessionmaker

from app.core.extensions import db
from app.models import Appointment, HelpAlert, HelpContact, Message, Ticket
from app.services import reports
from tests.factories import (
    CommunityFactory,
    ConversationFactory,
    DepartmentFactory,
    DoctorFactory,
    FaqArticleFactory,
    PatientFactory,
    ResidentFactory,
    SlotFactory,
    StaffFactory,
    StreetFactory,
)

SH = ZoneInfo("Asia/Shanghai")
START, END = date(2024, 5, 1), date(2024, 5, 3)
MIN = 60


def sh(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as the UTC-aware datetime the models store."""
    return datetime(2024, month, day, hour, minute, tzinfo=SH).astimezone(timezone.utc)


@contextmanager
def rolled_back_world(app):
    """The fixture street in one transaction rolled back afterwards (pysqlite's savepoints would commit it:
    the session joins the connection's transaction and leaves it to this helper instead)."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        scoped = scoped_session(sessionmaker(bind=connection))
        original, db.session = db.session, scoped
        try:
            assert db.session.get_bind().dialect.name == "sqlite"
            yield build()
        finally:
            scoped.remove()
            db.session = original
            outer.rollback()
            connection.close()


def build() -> SimpleNamespace:
    street_a = StreetFactory(name="甲街道")
    street_b = StreetFactory(name="乙街道")
    a1 = CommunityFactory(street=street_a, name="幸福社区")
    a2 = CommunityFactory(street=street_a, name="和平社区")
    b1 = CommunityFactory(street=street_b, name="别处社区")
    r1, r2 = ResidentFactory(community=a1, name="王阿姨"), ResidentFactory(community=a1, name="李大爷")
    r3, rb = ResidentFactory(community=a2, name="张奶奶"), ResidentFactory(community=b1, name="外街居民")
    admin = StaffFactory(street=street_a, role="admin", username="lead_a", display_name="组长甲")
    staff = StaffFactory(street=street_a, role="staff", username="worker_a", display_name="陈晓")
    c1 = ConversationFactory(resident=r1, channel="wechat")
    c2 = ConversationFactory(resident=r2, channel="sms")
    c3 = ConversationFactory(resident=r3, channel="wechat")
    cb = ConversationFactory(resident=rb, channel="wechat")

    def say(conv, at, text, intent=None, author="resident"):
        db.session.add(Message(conversation_id=conv.id, channel=conv.channel, direction="in" if author == "resident"
                               else "out", author=author, text=text, intent=intent, created_at=at))

    # Conversation-days: (c1, 05-01) (c1, 05-02) (c2, 05-01) (c2, 05-02) (c3, 05-03) = 5.
    say(c1, sh(5, 1, 9), "社保卡怎么补办？", "nlu_fallback")
    say(c1, sh(5, 1, 9, 1), "抱歉我没听懂", author="bot")  # the bot's own messages are never counted
    say(c1, sh(5, 1, 9, 5), "谢谢", "thanks")
    say(c1, sh(5, 2, 10), "社保卡丢了怎么补办", "nlu_fallback")
    # Both are 05-01 in UTC; in Shanghai the second is already 05-02.
    say(c2, sh(5, 1, 23, 30), "居住证办理", "faq_residence")
    say(c2, sh(5, 2, 0, 10), "停车位 怎么申请", "nlu_fallback")
    say(c2, sh(5, 2, 0, 20), "人工")  # in human mode: no intent, not "classified"
    say(c3, sh(5, 3, 8), "社保卡怎么补办", "nlu_fallback")
    say(c3, sh(4, 30, 23, 59), "范围之外", "nlu_fallback")  # the day before the range
    say(cb, sh(5, 1, 10), "社保卡怎么补办", "nlu_fallback")  # another street

    def ticket(at, *, priority="normal", category="general", source="staff", resident, conv=None, street=street_a,
               first=None, resolved=None, status="open", csat=None, reopened=0, breach_first=False,
               breach_resolution=False):
        t = Ticket(street_id=street.id, subject="需要人工", created_at=at, priority=priority, category=category, source=source,
                   resident_id=resident.id, conversation_id=conv.id if conv else None,
                   first_responded_at=at + timedelta(seconds=first) if first is not None else None,
                   resolved_at=at + timedelta(seconds=resolved) if resolved is not None else None,
                   status=status, csat_score=csat, reopened_count=reopened, assignee_id=staff.id,
                   first_response_breached=breach_first, resolution_breached=breach_resolution)
        db.session.add(t)
        db.session.flush()
        return t

    ticket(sh(5, 1, 9, 10), category="fallback", source="bot", resident=r1, conv=c1, first=10 * MIN,
           resolved=60 * MIN, status="resolved", csat=5)                                          # t1
    ticket(sh(5, 1, 12), resident=r2, first=5 * MIN, status="pending")                             # t8
    ticket(sh(5, 2, 0, 15), category="handoff", source="resident", resident=r2, conv=c2, first=30 * MIN,
           resolved=120 * MIN, status="closed", csat=3)                                           # t2
    ticket(sh(5, 2, 14), priority="urgent", category="help", source="help_alert", resident=r3, first=2 * MIN,
           resolved=20 * MIN, status="resolved", csat=4, reopened=1)                              # t3
    ticket(sh(5, 3, 9), priority="high", category="complaint", source="bot", resident=r3, conv=c3,
           first=50 * MIN, breach_first=True, breach_resolution=True)                             # t4
    ticket(sh(5, 3, 11), resident=r1, reopened=1)                                                 # t5
    ticket(sh(5, 1, 10, 5), category="fallback", source="bot", resident=rb, conv=cb, street=street_b, first=MIN,
           resolved=MIN * 2, status="resolved", csat=1, breach_first=True)                        # other street
    ticket(sh(4, 30, 12), resident=r1, first=MIN, breach_first=True)                               # before the range

    family = HelpContact(resident_id=r1.id, position=1, name="女儿", phone="+8613700000001", relation="family")
    neighbour = HelpContact(resident_id=r2.id, position=1, name="对门", phone="+8613700000002", relation="neighbour")
    db.session.add_all([family, neighbour])
    db.session.flush()

    def alert(resident, at, *, accepted_after=None, contact=None, staff_id=None, status="resolved", outcome=None,
              round_=1, alarm=False, source="device"):
        a = HelpAlert(resident_id=resident.id, source=source, status=status, round=round_, alarm=alarm, step=1,
                      created_at=at, outcome=outcome, accepted_contact_id=contact.id if contact else None,
                      accepted_staff_id=staff_id,
                      accepted_at=at + timedelta(seconds=accepted_after) if accepted_after is not None else None)
        db.session.add(a)
        db.session.flush()
        return a

    alert(r1, sh(5, 1, 20), accepted_after=60, contact=family, outcome="helped_at_home")
    alert(r2, sh(5, 2, 3), accepted_after=300, contact=neighbour, outcome="false_alarm", round_=2)
    alert(r3, sh(5, 3, 10), accepted_after=900, staff_id=admin.id, status="accepted", alarm=True,
          source="wechat_menu")
    alert(r1, sh(5, 3, 12), status="cancelled")
    alert(rb, sh(5, 1, 20), accepted_after=30, status="accepted", alarm=True)  # another street

    d1 = DepartmentFactory(name="内科")
    d2 = DepartmentFactory(name="眼科", hospital=d1.hospital)
    doctors = {d1.id: DoctorFactory(department=d1), d2.id: DoctorFactory(department=d2)}

    def visit(resident, department, day, status):
        visit.n += 1  # each visit its own slot: a doctor has one slot per start time
        slot = SlotFactory(doctor=doctors[department.id], day=day, at=time(8 + visit.n))
        patient = PatientFactory(resident=resident)
        db.session.add(Appointment(slot_id=slot.id, seat_no=1, patient_id=patient.id, booked_by_resident_id=resident.id,
                                   department_id=department.id, local_date=day, status=status))

    visit.n = 0
    visit(r1, d1, date(2024, 5, 1), "fulfilled")
    visit(r2, d1, date(2024, 5, 1), "noshow")
    visit(r3, d1, date(2024, 5, 2), "cancelled")
    visit(r1, d2, date(2024, 5, 3), "booked")
    visit(r2, d2, date(2024, 5, 2), "fulfilled")
    visit(rb, d1, date(2024, 5, 1), "noshow")  # another street
    visit(r1, d1, date(2024, 5, 5), "fulfilled")  # after the range

    FaqArticleFactory(topic="rpt_social_card", title="社保卡补办", uses=10)
    FaqArticleFactory(topic="rpt_residence", title="居住证", uses=3)
    db.session.flush()
    return SimpleNamespace(street_a=street_a, street_b=street_b, a1=a1, a2=a2, b1=b1, admin=admin, staff=staff,
                           d1=d1, d2=d2)


def run(world, name, *, community=None, street=None):
    scope = reports.build_scope(street_id=(street or world.street_a).id, start=START, end=END,
                                community_id=community.id if community else None)
    return reports.run(name=name, scope=scope)


def check_volume(world):
    data = run(world, "volume")
    assert data["totals"] == {"conversations": 5, "tickets": 6, "help_alerts": 4}
    assert data["days"] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert data["conversations"] == [
        {"day": "2024-05-01", "channel": "sms", "count": 1}, {"day": "2024-05-01", "channel": "wechat", "count": 1},
        {"day": "2024-05-02", "channel": "sms", "count": 1}, {"day": "2024-05-02", "channel": "wechat", "count": 1},
        {"day": "2024-05-03", "channel": "wechat", "count": 1}]
    assert data["tickets"] == [
        {"day": "2024-05-01", "channel": "console", "category": "general", "count": 1},
        {"day": "2024-05-01", "channel": "wechat", "category": "fallback", "count": 1},
        {"day": "2024-05-02", "channel": "console", "category": "help", "count": 1},
        {"day": "2024-05-02", "channel": "sms", "category": "handoff", "count": 1},
        {"day": "2024-05-03", "channel": "console", "category": "general", "count": 1},
        {"day": "2024-05-03", "channel": "wechat", "category": "complaint", "count": 1}]
    assert data["help_alerts"] == [
        {"day": "2024-05-01", "source": "device", "count": 1}, {"day": "2024-05-02", "source": "device", "count": 1},
        {"day": "2024-05-03", "source": "device", "count": 1}, {"day": "2024-05-03", "source": "wechat_menu", "count": 1}]
    # Community A1 (r1, r2): c1 and c2 days; t1 t8 t2 t5; alerts of r1 (2) and r2 (1).
    assert run(world, "volume", community=world.a1)["totals"] == {"conversations": 4, "tickets": 4, "help_alerts": 3}


def check_speed(world):
    data = run(world, "speed")
    rows = {p["priority"]: p for p in data["by_priority"]}
    # normal: first responses 5, 10, 30 min -> median 10 min; p90 at rank 1.8 = 600 + 0.8 * 1200 = 1560 s.
    assert rows["normal"]["tickets"] == 4
    assert rows["normal"]["first_response"] == {"n": 3, "p50": 600.0, "p90": 1560.0}
    # normal: resolutions 60, 120 min -> median 5400 s; p90 = 3600 + 0.9 * 3600 = 6840 s.
    assert rows["normal"]["resolution"] == {"n": 2, "p50": 5400.0, "p90": 6840.0}
    assert rows["normal"]["sla_compliance"] == 1.0
    assert rows["urgent"]["first_response"] == {"n": 1, "p50": 120.0, "p90": 120.0}
    assert rows["urgent"]["resolution"] == {"n": 1, "p50": 1200.0, "p90": 1200.0}
    assert rows["high"]["first_response"] == {"n": 1, "p50": 3000.0, "p90": 3000.0}
    assert rows["high"]["resolution"] == {"n": 0, "p50": None, "p90": None}
    assert (rows["high"]["first_response_breached"], rows["high"]["resolution_breached"]) == (1, 1)
    assert rows["high"]["sla_compliance"] == 0.0
    assert rows["low"]["tickets"] == 0 and rows["low"]["sla_compliance"] is None
    assert (data["tickets"], data["breached"], data["sla_compliance"]) == (6, 1, 0.8333)
    assert [(b["subject"], b["priority"], b["assignee"]) for b in data["breaches"]] == [("需要人工", "high", "陈晓")]


def check_outcome(world):
    data = run(world, "outcome")
    # Resolved now: t1 t2 t3 of 6; reopened: t3 t5 of the 4 ever resolved (t1 t2 t3 t5).
    assert (data["tickets"], data["resolved"], data["resolution_rate"]) == (6, 3, 0.5)
    assert (data["reopened"], data["reopen_rate"]) == (2, 0.5)
    assert data["csat"] == {
        "distribution": [{"score": 1, "count": 0}, {"score": 2, "count": 0}, {"score": 3, "count": 1},
                         {"score": 4, "count": 1}, {"score": 5, "count": 1}],
        "rated": 3, "average": 4.0, "satisfied": 0.6667, "response_rate": 1.0}
    assert data["trend"] == [{"day": "2024-05-01", "rated": 1, "average": 5.0, "satisfied": 1.0},
                             {"day": "2024-05-02", "rated": 2, "average": 3.5, "satisfied": 0.5}]


def check_bot(world):
    data = run(world, "bot")
    # Tickets opened on the day of a conversation: (c1, 05-01) by the bot, (c2, 05-02) from the menu,
    # (c3, 05-03) by the bot; (c1, 05-02) and (c2, 05-01) were finished by the bot alone.
    assert (data["conversations"], data["contained"], data["escalated"], data["handed_off"]) == (5, 2, 3, 2)
    assert (data["containment_rate"], data["handoff_rate"]) == (0.4, 0.4)
    # Classified resident messages: 3 (c1) + 2 (c2) + 1 (c3); fallbacks 2 + 1 + 1.
    assert (data["classified_messages"], data["fallback_messages"], data["fallback_rate"]) == (6, 4, 0.6667)
    # "社保卡怎么补办？" and "社保卡怎么补办" normalise alike (2); "社保卡丢了怎么补办" shares 5 of 9 bigrams (merged).
    assert [(u["question"], u["count"]) for u in data["unanswered"]] == [("社保卡怎么补办", 3), ("停车位 怎么申请", 1)]
    assert sorted(data["unanswered"][0]["examples"]) == ["社保卡丢了怎么补办", "社保卡怎么补办"]
    topics = [f["topic"] for f in data["faq"] if f["topic"].startswith("rpt_")]
    assert topics == ["rpt_social_card", "rpt_residence"]


def check_help(world):
    data = run(world, "help")
    assert data["alerts"] == 4
    # Accepted after 60, 300, 900 s: median 300; p90 at rank 1.8 = 300 + 0.8 * 600 = 780.
    assert data["time_to_accept"] == {"n": 3, "p50": 300.0, "p90": 780.0}
    assert sorted((a["relation"], a["count"]) for a in data["accepted_by"]) == [
        ("family", 1), ("neighbour", 1), ("staff", 1)]
    assert data["whole_chain"]["count"] == 2
    assert sorted((a["round"], a["alarm"]) for a in data["whole_chain"]["alerts"]) == [(1, True), (2, False)]
    assert sorted((o["outcome"], o["count"]) for o in data["outcomes"]) == [
        ("accepted", 1), ("cancelled", 1), ("false_alarm", 1), ("helped_at_home", 1)]


def check_appointments(world):
    data = run(world, "appointments")
    d1, d2 = data["departments"]
    assert (d1["department"], d1["bookings"], d1["cancelled"], d1["noshow"], d1["fulfilled"], d1["booked"],
            d1["noshow_rate"]) == ("内科", 3, 1, 1, 1, 0, 0.5)
    assert (d2["department"], d2["bookings"], d2["cancelled"], d2["noshow"], d2["fulfilled"], d2["booked"],
            d2["noshow_rate"]) == ("眼科", 2, 0, 0, 1, 1, 0.0)
    assert data["totals"] == {"bookings": 5, "cancelled": 1, "noshow": 1, "fulfilled": 2, "booked": 1,
                              "noshow_rate": 0.3333}
    assert run(world, "appointments", community=world.a1)["totals"]["bookings"] == 4


CHECKS = [check_volume, check_speed, check_outcome, check_bot, check_help, check_appointments]
