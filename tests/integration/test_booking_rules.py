"""Every booking rule refuses with its own code, and the seats add up after each operation."""
from __future__ import annotations

from datetime import time, timedelta

import pytest

from app.core.errors import DomainError
from app.core.extensions import db
from app.services.booking import appointments as booking
from app.services.booking import attendance as booking_attendance
from tests.factories import DepartmentFactory, PatientFactory, SlotFactory, local_dt
from tests.helpers.booking import DAY, NOW, active_count, assert_slot_consistent, clinic, resident_with_patient


def _refused(code: str, call, **kwargs):
    # A refusal rolls back the service's transaction; keep the test's own data out of that.
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


def test_booking_takes_the_lowest_free_seat_and_counts_it(session):
    slot, = clinic(capacity=3)
    resident, patient = resident_with_patient()
    first = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    other, other_patient = resident_with_patient()
    second = booking.book_slot(resident_id=other.id, slot_id=slot.id, now=NOW)
    assert (first.seat_no, second.seat_no) == (1, 2)
    assert first.patient_id == patient.id and first.status == "booked"
    assert_slot_consistent(slot.id)
    booking.cancel_appointment(resident_id=resident.id, appointment_id=first.id, now=NOW)
    third_resident, _ = resident_with_patient()
    third = booking.book_slot(resident_id=third_resident.id, slot_id=slot.id, now=NOW)
    assert third.seat_no == 1  # the cancelled seat is handed out again
    assert_slot_consistent(slot.id)


def test_a_full_slot_is_slot_taken(session):
    slot, = clinic(capacity=1)
    first, _ = resident_with_patient()
    booking.book_slot(resident_id=first.id, slot_id=slot.id, now=NOW)
    late, _ = resident_with_patient()
    _refused("slot_taken", booking.book_slot, resident_id=late.id, slot_id=slot.id, now=NOW)
    assert_slot_consistent(slot.id)


def test_an_unreleased_slot_cannot_be_booked_until_its_release_time(session):
    far = DAY + timedelta(days=6)  # NOW is 8 days before: released at 08:00 the day after NOW
    slot, = clinic(day=far)
    resident, _ = resident_with_patient()
    error = _refused("slot_not_released", booking.book_slot, resident_id=resident.id, slot_id=slot.id, now=NOW)
    assert error.status == 409
    release = local_dt(far - timedelta(days=7), time(8, 0))
    _refused("slot_not_released", booking.book_slot, resident_id=resident.id, slot_id=slot.id,
             now=release - timedelta(seconds=1))
    assert booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=release).status == "booked"


def test_release_days_and_time_come_from_config(session, app):
    slot, = clinic(day=DAY + timedelta(days=2))  # 4 days after NOW
    resident, _ = resident_with_patient()
    app.config.update(BOOKING_RELEASE_DAYS=3, BOOKING_RELEASE_TIME="09:30")
    try:
        _refused("slot_not_released", booking.book_slot, resident_id=resident.id, slot_id=slot.id, now=NOW)
        one_day_later = local_dt(DAY - timedelta(days=1), time(9, 30))
        assert booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=one_day_later)
    finally:
        app.config.pop("BOOKING_RELEASE_DAYS")
        app.config.pop("BOOKING_RELEASE_TIME")


def test_a_slot_that_has_begun_is_slot_in_past(session):
    slot, = clinic()
    resident, _ = resident_with_patient()
    _refused("slot_in_past", booking.book_slot, resident_id=resident.id, slot_id=slot.id, now=slot.start_at)


def test_one_active_booking_per_patient_department_and_day(session):
    morning, later = clinic(slots=2, capacity=3)
    resident, _ = resident_with_patient()
    booking.book_slot(resident_id=resident.id, slot_id=morning.id, now=NOW)
    _refused("daily_limit", booking.book_slot, resident_id=resident.id, slot_id=later.id, now=NOW)
    other_department, = clinic()
    assert booking.book_slot(resident_id=resident.id, slot_id=other_department.id, now=NOW)


def test_the_database_holds_the_daily_rule_when_the_check_is_raced(session, monkeypatch):
    """With the Python pre-check out of the way, the partial unique index still refuses."""
    morning, later = clinic(slots=2, capacity=3)
    resident, _ = resident_with_patient()
    booking.book_slot(resident_id=resident.id, slot_id=morning.id, now=NOW)
    monkeypatch.setattr(booking, "_check_patient_may_book", lambda *a, **k: None)
    _refused("daily_limit", booking.book_slot, resident_id=resident.id, slot_id=later.id, now=NOW)
    assert_slot_consistent(later.id)  # the seat taken before the insert failed was given back


def test_at_most_three_active_bookings_per_patient(session):
    resident, patient = resident_with_patient()
    for _ in range(3):
        slot, = clinic()
        booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    fourth, = clinic()
    _refused("too_many_active", booking.book_slot, resident_id=resident.id, slot_id=fourth.id, now=NOW)
    assert active_count(patient.id) == 3
    assert_slot_consistent(fourth.id)


def test_past_visits_do_not_count_towards_the_active_limit(session):
    resident, _ = resident_with_patient()
    earlier = [clinic(day=DAY - timedelta(days=1))[0] for _ in range(3)]
    for slot in earlier:
        booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    slot, = clinic()
    after_those_visits = local_dt(DAY - timedelta(days=1), time(12, 0))
    assert booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=after_those_visits)


def test_cancelling_is_possible_until_the_deadline_the_day_before(session):
    slot, = clinic()
    resident, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    deadline = local_dt(DAY - timedelta(days=1), time(15, 0))
    error = _refused("past_deadline", booking.cancel_appointment, resident_id=resident.id,
                     appointment_id=appointment.id, now=deadline)
    assert error.status == 409 and "deadline" in error.details
    cancelled = booking.cancel_appointment(resident_id=resident.id, appointment_id=appointment.id,
                                           now=deadline - timedelta(seconds=1))
    assert cancelled.status == "cancelled"
    assert_slot_consistent(slot.id)


def test_cancelling_twice_gives_back_one_seat(session):
    slot, = clinic(capacity=2)
    resident, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    booking.cancel_appointment(resident_id=resident.id, appointment_id=appointment.id, now=NOW)
    booking.cancel_appointment(resident_id=resident.id, appointment_id=appointment.id, now=NOW)
    db.session.refresh(slot)
    assert slot.booked_count == 0
    assert_slot_consistent(slot.id)


def test_another_residents_appointment_is_not_found(session):
    slot, = clinic()
    owner, _ = resident_with_patient()
    stranger, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=owner.id, slot_id=slot.id, now=NOW)
    _refused("not_found", booking.cancel_appointment, resident_id=stranger.id, appointment_id=appointment.id, now=NOW)
    _refused("not_found", booking.reschedule_appointment, resident_id=stranger.id, appointment_id=appointment.id,
             new_slot_id=slot.id, now=NOW)


def test_booking_for_another_residents_patient_is_not_found(session):
    slot, = clinic()
    resident, _ = resident_with_patient()
    _, foreign_patient = resident_with_patient()
    _refused("not_found", booking.book_slot, resident_id=resident.id, slot_id=slot.id,
             patient_id=foreign_patient.id, now=NOW)


def test_an_unknown_slot_is_not_found(session):
    resident, _ = resident_with_patient()
    _refused("not_found", booking.book_slot, resident_id=resident.id, slot_id=987654, now=NOW)


def test_a_resident_without_own_patient_record_gets_no_patient(session):
    slot, = clinic()
    resident, _ = resident_with_patient(relation="parent")
    error = _refused("no_patient", booking.book_slot, resident_id=resident.id, slot_id=slot.id, now=NOW)
    assert error.status == 422


def test_a_resident_books_for_a_registered_family_member(session):
    slot, = clinic()
    resident, _ = resident_with_patient()
    mother = PatientFactory(resident=resident, relation="parent")
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, patient_id=mother.id, now=NOW)
    assert appointment.patient_id == mother.id and appointment.booked_by_resident_id == resident.id


def test_reschedule_moves_the_seat_in_one_step(session):
    first, second = clinic(slots=2, capacity=2)
    resident, patient = resident_with_patient()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=first.id, now=NOW)
    moved = booking.reschedule_appointment(resident_id=resident.id, appointment_id=appointment.id,
                                           new_slot_id=second.id, now=NOW)
    assert moved.slot_id == second.id and moved.status == "booked" and moved.id != appointment.id
    db.session.refresh(appointment)
    assert appointment.status == "cancelled"
    assert active_count(patient.id) == 1
    assert_slot_consistent(first.id)
    assert_slot_consistent(second.id)


def test_a_failed_reschedule_changes_nothing(session):
    first, full = clinic(slots=2, capacity=1)
    resident, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=first.id, now=NOW)
    other, _ = resident_with_patient()
    booking.book_slot(resident_id=other.id, slot_id=full.id, now=NOW)
    _refused("slot_taken", booking.reschedule_appointment, resident_id=resident.id, appointment_id=appointment.id,
             new_slot_id=full.id, now=NOW)
    db.session.refresh(appointment)
    assert appointment.status == "booked" and appointment.slot_id == first.id
    assert_slot_consistent(first.id)
    assert_slot_consistent(full.id)


def test_reschedule_keeps_the_other_rules(session):
    slot, = clinic()
    resident, _ = resident_with_patient()
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id, now=NOW)
    elsewhere, = clinic()
    _refused("different_department", booking.reschedule_appointment, resident_id=resident.id,
             appointment_id=appointment.id, new_slot_id=elsewhere.id, now=NOW)
    _refused("same_slot", booking.reschedule_appointment, resident_id=resident.id,
             appointment_id=appointment.id, new_slot_id=slot.id, now=NOW)
    unreleased = SlotFactory(doctor=slot.doctor, department=slot.department, day=DAY + timedelta(days=30))
    _refused("slot_not_released", booking.reschedule_appointment, resident_id=resident.id,
             appointment_id=appointment.id, new_slot_id=unreleased.id, now=NOW)
    later = SlotFactory(doctor=slot.doctor, department=slot.department, day=DAY, at=time(14, 0))
    _refused("past_deadline", booking.reschedule_appointment, resident_id=resident.id,
             appointment_id=appointment.id, new_slot_id=later.id, now=local_dt(DAY, time(7, 0)))


def test_search_shows_only_released_future_slots_with_free_seats(session):
    department = DepartmentFactory()
    morning, full = clinic(slots=2, capacity=1, department=department)
    afternoon = SlotFactory(doctor=morning.doctor, department=department, day=DAY, at=time(14, 0),
                            session="afternoon")
    unreleased, = clinic(day=DAY + timedelta(days=7), department=department)
    resident, _ = resident_with_patient()
    booking.book_slot(resident_id=resident.id, slot_id=full.id, now=NOW)
    found = booking.search_free_slots(department=department.id, date_from=DAY, date_to=DAY + timedelta(days=7), now=NOW)
    assert [s.id for s in found] == [morning.id, afternoon.id]
    assert unreleased.id not in [s.id for s in found]
    by_name = booking.search_free_slots(department=department.name, date_from=DAY, session="afternoon", now=NOW)
    assert [s.id for s in by_name] == [afternoon.id]
    assert booking.search_free_slots(department=department.id, date_from=DAY, now=morning.start_at) == [afternoon]
    assert booking.search_free_slots(department=department.id, date_from=DAY, doctor_id=987654, now=NOW) == []


def test_search_refuses_an_unknown_department_and_a_backwards_range(session):
    _refused("not_found", booking.search_free_slots, department="不存在科", date_from=DAY, now=NOW)
    department = DepartmentFactory()
    _refused("bad_date_range", booking.search_free_slots, department=department.id, date_from=DAY,
             date_to=DAY - timedelta(days=1), now=NOW)


def test_list_appointments_active_only_shows_upcoming_bookings(session):
    resident, _ = resident_with_patient()
    kept, dropped = clinic()[0], clinic()[0]
    booking.book_slot(resident_id=resident.id, slot_id=kept.id, now=NOW)
    gone = booking.book_slot(resident_id=resident.id, slot_id=dropped.id, now=NOW)
    booking.cancel_appointment(resident_id=resident.id, appointment_id=gone.id, now=NOW)
    assert [a.slot_id for a in booking.list_appointments(resident_id=resident.id, active_only=True, now=NOW)] \
        == [kept.id]
    assert len(booking.list_appointments(resident_id=resident.id)) == 2


# --- staff marks and the no-show suspension ---------------------------------------------------

def _visit_passed(resident, day_offset: int):
    slot, = clinic(day=DAY + timedelta(days=day_offset))
    appointment = booking.book_slot(resident_id=resident.id, slot_id=slot.id,
                                    now=slot.start_at - timedelta(days=2))
    return appointment, slot


def test_marks_are_refused_before_their_time_and_on_non_booked_appointments(session):
    resident, _ = resident_with_patient()
    appointment, slot = _visit_passed(resident, 0)
    _refused("too_early", booking_attendance.mark_noshow, appointment_id=appointment.id,
             now=slot.start_at - timedelta(minutes=1))
    _refused("too_early", booking_attendance.mark_attended, appointment_id=appointment.id,
             now=local_dt(DAY - timedelta(days=1), time(23, 0)))
    marked = booking_attendance.mark_attended(appointment_id=appointment.id, now=local_dt(DAY, time(8, 45)))
    assert marked.status == "fulfilled"
    _refused("invalid_transition", booking_attendance.mark_noshow, appointment_id=appointment.id,
             now=slot.end_at)
    _refused("invalid_transition", booking.cancel_appointment, resident_id=resident.id,
             appointment_id=appointment.id, now=NOW)
    assert_slot_consistent(slot.id)  # a visit that happened keeps its seat


def test_three_noshows_in_90_days_suspend_booking_for_90_days(session):
    resident, patient = resident_with_patient()
    for offset in (0, 30, 60):
        appointment, slot = _visit_passed(resident, offset)
        marked_at = slot.end_at
        booking_attendance.mark_noshow(appointment_id=appointment.id, now=marked_at)
    db.session.refresh(patient)
    assert patient.suspended_until == marked_at + timedelta(days=90)
    next_slot, = clinic(day=DAY + timedelta(days=65))
    error = _refused("booking_suspended", booking.book_slot, resident_id=resident.id, slot_id=next_slot.id,
                     now=next_slot.start_at - timedelta(days=2))
    assert error.status == 409
    after, = clinic(day=DAY + timedelta(days=160))
    assert booking.book_slot(resident_id=resident.id, slot_id=after.id, now=after.start_at - timedelta(days=2))


def test_noshows_spread_over_more_than_90_days_do_not_suspend(session):
    resident, patient = resident_with_patient()
    for offset in (0, 50, 100):
        appointment, slot = _visit_passed(resident, offset)
        booking_attendance.mark_noshow(appointment_id=appointment.id, now=slot.end_at)
    db.session.refresh(patient)
    assert patient.suspended_until is None
