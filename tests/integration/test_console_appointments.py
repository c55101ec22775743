"""今日预约 in the console: the day's appointments per department, and staff marking 已就诊 / 爽约."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.models import Appointment
from app.models.base import utcnow
from app.services.booking.calendar import local_day
from tests.factories import (
    CommunityFactory,
    DepartmentFactory,
    DoctorFactory,
    PatientFactory,
    SlotFactory,
    StaffFactory,
)
from tests.integration.test_console_auth import csrf_from, login

FULL_ID = "110105194912310021"


def seat(session, slot, patient, status="booked") -> Appointment:
    """An appointment on `slot`, written directly: booking refuses slots that have begun, which marking needs."""
    slot.booked_count += 1
    appointment = Appointment(slot_id=slot.id, seat_no=slot.booked_count, patient_id=patient.id,
                              booked_by_resident_id=patient.resident_id, department_id=slot.department_id,
                              local_date=slot.local_date, status=status,
                              cancelled_at=utcnow() if status == "cancelled" else None)
    session.add(appointment)
    session.commit()  # as the factories do: a service's rollback must not take the test's rows with it
    return appointment


def past_slot(doctor, *, ago=timedelta(hours=1)):
    """A slot that began `ago` before now, on whatever day that is in Shanghai (safe just after midnight too)."""
    start = utcnow() - ago
    return SlotFactory(doctor=doctor, day=local_day(start), start_at=start, end_at=start + timedelta(minutes=30))


@pytest.fixture
def clinic(session):
    internal = DepartmentFactory(name="内科")
    eyes = DepartmentFactory(name="眼科")
    dr_li = DoctorFactory(department=internal, name="李医生", title="专家")
    dr_zhou = DoctorFactory(department=eyes, name="周医生")
    slot = past_slot(dr_li)
    eye_slot = past_slot(dr_zhou, ago=timedelta(minutes=40))
    other_day_slot = past_slot(dr_li, ago=timedelta(days=2))
    # The desk sees the visits its own street's residents booked (tests/security/test_authorization.py: no other).
    community = CommunityFactory()
    zhang = PatientFactory(name="张秀英", id_number=FULL_ID, resident__community=community)
    wang = PatientFactory(name="王建国", resident__community=community)
    zhao = PatientFactory(name="赵桂兰", resident__community=community)
    return {
        "day": slot.local_date, "internal": internal, "eyes": eyes, "zhang": zhang, "dr_li": dr_li,
        "community": community,
        "booked": seat(session, slot, zhang),
        "cancelled": seat(session, slot, wang, status="cancelled"),
        "eye": seat(session, eye_slot, zhao),
        "other_day": seat(session, other_day_slot, PatientFactory(name="钱多多", resident__community=community)),
    }


@pytest.fixture
def desk(client, clinic):
    login(client, StaffFactory(street=clinic["community"].street))
    return csrf_from(client, "/console/appointments")


def sections(page: str) -> dict[str, str]:
    """Department heading -> that department's part of the page."""
    return {re.search(r"<h2>(.*?)</h2>", part).group(1): part for part in page.split('<section')[1:]}


def test_the_days_appointments_are_listed_per_department_with_cancelled_ones_marked(client, clinic, desk):
    page = client.get(f"/console/appointments?date={clinic['day']}").get_data(as_text=True)
    parts = sections(page)
    internal = next(text for name, text in parts.items() if name.endswith("内科"))
    eyes = next(text for name, text in parts.items() if name.endswith("眼科"))
    assert "张秀英" in internal and "王建国" in internal and "李医生" in internal and "专家" in internal
    assert "赵桂兰" in eyes and "周医生" in eyes and "张秀英" not in eyes
    cancelled_row = re.search(rf'<tr id="appt-{clinic["cancelled"].id}".*?</tr>', internal, re.S).group(0)
    assert "已取消" in cancelled_row and "<form" not in cancelled_row  # nothing to mark on a cancelled visit
    assert "钱多多" not in page  # another day
    # The ID number is never on the page; at most its last four characters.
    assert FULL_ID not in page and "*" * 14 + FULL_ID[-4:] in page
    assert "script-src 'self'" in client.get("/console/appointments").headers["Content-Security-Policy"]


def test_the_department_filter_and_the_default_day(client, clinic, desk):
    query = f"date={clinic['day']}&department={clinic['eyes'].id}"
    page = client.get(f"/console/appointments?{query}").get_data(as_text=True)
    assert "赵桂兰" in page and "张秀英" not in page
    today = client.get("/console/appointments").get_data(as_text=True)
    assert f'value="{local_day(utcnow()).isoformat()}"' in today  # the date picker starts on today in Shanghai
    assert client.get("/console/appointments?date=yesterday").status_code == 422
    assert client.get("/console/appointments?department=999999").status_code == 404


def test_marking_attended_changes_the_appointment(client, session, clinic, desk):
    booked = clinic["booked"]
    response = client.post(f"/console/appointments/{booked.id}/attended",
                           data={"csrf_token": desk, "date": clinic["day"].isoformat()})
    assert response.status_code == 302
    assert f"date={clinic['day'].isoformat()}" in response.headers["Location"]
    session.refresh(booked)
    assert booked.status == "fulfilled" and booked.marked_at is not None
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已标记为“已就诊”" in page


def test_marking_noshow_changes_the_appointment_and_the_third_suspends_booking(client, session, clinic, desk):
    zhang = clinic["zhang"]
    for days in (10, 20):  # two earlier missed visits within 90 days
        earlier = past_slot(clinic["dr_li"], ago=timedelta(days=days))
        seat(session, earlier, zhang, status="noshow")
    booked = clinic["booked"]
    client.post(f"/console/appointments/{booked.id}/noshow", data={"csrf_token": desk})
    session.refresh(booked)
    session.refresh(zhang)
    assert booked.status == "noshow"
    assert zhang.suspended_until is not None and zhang.suspended_until > utcnow() + timedelta(days=89)


def test_a_refused_mark_is_explained_and_changes_nothing(client, session, clinic, desk):
    cancelled = clinic["cancelled"]
    response = client.post(f"/console/appointments/{cancelled.id}/attended", data={"csrf_token": desk},
                           follow_redirects=True)
    assert "不能再标记" in response.get_data(as_text=True)
    session.refresh(cancelled)
    assert cancelled.status == "cancelled"
    future = SlotFactory(doctor=clinic["dr_li"], day=local_day(utcnow()) + timedelta(days=2))
    later = seat(session, future, PatientFactory(resident__community=clinic["community"]))
    response = client.post(f"/console/appointments/{later.id}/noshow", data={"csrf_token": desk}, follow_redirects=True)
    assert "预约时间到了之后才能标记" in response.get_data(as_text=True)
    session.refresh(later)
    assert later.status == "booked"
    assert client.post("/console/appointments/999999/attended", data={"csrf_token": desk}).status_code == 404


def test_marking_without_a_csrf_token_is_refused(client, session, clinic, desk):
    booked = clinic["booked"]
    for action in ("attended", "noshow"):
        assert client.post(f"/console/appointments/{booked.id}/{action}").status_code == 400
        forged = client.post(f"/console/appointments/{booked.id}/{action}", data={"csrf_token": "forged"})
        assert forged.status_code == 400 and "安全令牌" in forged.get_data(as_text=True)
    session.refresh(booked)
    assert booked.status == "booked"


def test_without_a_session_the_page_and_the_marks_send_to_login(client, session, clinic):
    response = client.get("/console/appointments")
    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login")
    token = csrf_from(client)
    booked = clinic["booked"]
    response = client.post(f"/console/appointments/{booked.id}/attended", data={"csrf_token": token})
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    session.refresh(booked)
    assert booked.status == "booked"
