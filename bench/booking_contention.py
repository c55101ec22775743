"""Booking under contention on PostgreSQL: 500 simultaneous attempts on 20 seats, against a baseline.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/linli_booking .venv/bin/python bench/booking_contention.py

Contended: one slot with 20 seats, 500 residents try to book it at the same moment; exactly 20 must
win, nobody twice. Holds: the same 500 residents hold a seat of another 20-seat slot at the same moment
and confirm the hold they got (booking.hold_slot, then booking.confirm_hold, as the bot's form and the
app do); exactly 20 bookings, no seat held twice. Baseline: the same 500 attempts, each on a slot of
its own (no two requests want the same row). Every attempt runs in its own app context and session
as a request would, with the app's connection pool (10 + 20 overflow). The data it creates is
removed at the end, so it can run against a migrated database that holds other data.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import delete, func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.core.errors import DomainError  # noqa: E402
from app.core.extensions import db  # noqa: E402
from app.core.secrets_at_rest import encrypt, keyed_hash  # noqa: E402
from app.models import Appointment, Department, Doctor, Hospital, Patient, Resident, Slot, SlotHold  # noqa: E402
from app.seed import demo_id_number  # noqa: E402
from app.services import booking  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2031, 3, 12)
NOW = datetime.combine(DAY - timedelta(days=2), clock(10, 0), SHANGHAI)  # every slot of DAY released


def build(*, residents: int, seats: int, tag: str):
    """The contended slot, the held one, one slot per resident for the baseline, and the residents with a patient
    each."""
    hospital = Hospital(name=f"bench-{tag}")
    department = Department(hospital=hospital, name="内科")
    doctor = Doctor(department=department, name="压测医生", title="普通")
    db.session.add_all([hospital, department, doctor])
    db.session.flush()

    def slot(minutes: int, capacity: int) -> Slot:
        start = datetime.combine(DAY, clock(8, 0), SHANGHAI) + timedelta(minutes=minutes)
        return Slot(doctor_id=doctor.id, department_id=department.id, local_date=DAY, session="morning",
                    start_at=start, end_at=start + timedelta(minutes=1), capacity=capacity, booked_count=0)

    contended = slot(0, seats)
    # The holds phase's slot is on another day: a patient may hold one seat per department and day.
    held = slot(2 * 24 * 60, seats)
    held.local_date = DAY + timedelta(days=2)
    # The baseline patients book on the next day's slots: each patient may hold one per department and day.
    own_slots = [slot(24 * 60 + 1 + i, 1) for i in range(residents)]
    for s in own_slots:
        s.local_date = DAY + timedelta(days=1)
    number = demo_id_number("19500101", "001")
    encrypted, hashed = encrypt(number), keyed_hash(number)
    people = [Resident(name=f"bench-{tag}-{i}") for i in range(residents)]
    db.session.add_all([contended, held, *own_slots, *people])
    db.session.flush()
    db.session.add_all([Patient(resident_id=r.id, name=r.name, relation="self", id_number_encrypted=encrypted,
                                id_number_hash=hashed, id_number_last4=number[-4:]) for r in people])
    db.session.commit()
    return hospital.id, contended.id, held.id, [s.id for s in own_slots], [r.id for r in people]


def book(resident_id: int, slot_id: int) -> int:
    return booking.book_slot(resident_id=resident_id, slot_id=slot_id, now=NOW).id


def hold_and_confirm(resident_id: int, slot_id: int) -> int:
    hold = booking.hold_slot(resident_id=resident_id, slot_id=slot_id, now=NOW)
    return booking.confirm_hold(resident_id=resident_id, hold_id=hold.id, now=NOW).id


def attempt_all(app, pairs: list[tuple[int, int]], how=book):
    """Every (resident, slot) attempt at once; returns (outcomes, seconds from the barrier to the last answer)."""
    barrier = threading.Barrier(len(pairs) + 1)

    def attempt(pair):
        resident_id, slot_id = pair
        with app.app_context():
            barrier.wait()
            try:
                return how(resident_id, slot_id)
            except DomainError as exc:
                return exc.code
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        futures = [pool.submit(attempt, pair) for pair in pairs]
        barrier.wait()
        started = time.perf_counter()
        outcomes = [f.result() for f in futures]
        return outcomes, time.perf_counter() - started


def check_contended(outcomes, slot_id: int, seats: int) -> None:
    won = [o for o in outcomes if isinstance(o, int)]
    refused = Counter(o for o in outcomes if not isinstance(o, int))
    holders = db.session.execute(select(Appointment.patient_id, Appointment.seat_no).where(
        Appointment.slot_id == slot_id, Appointment.status == "booked")).all()
    booked_count = db.session.scalar(select(Slot.booked_count).where(Slot.id == slot_id))
    assert len(won) == seats, f"{len(won)} bookings for {seats} seats"
    assert refused == {"slot_taken": len(outcomes) - seats}, refused
    assert len(holders) == seats == booked_count
    assert len({p for p, _ in holders}) == seats, "a patient holds two seats"
    assert sorted(s for _, s in holders) == list(range(1, seats + 1)), "a seat is held twice"


def check_held(outcomes, slot_id: int, seats: int) -> None:
    """As check_contended, and every seat was held once: 20 holds, each confirmed into its own appointment."""
    check_contended(outcomes, slot_id, seats)
    made = db.session.execute(select(SlotHold.status, SlotHold.appointment_id, SlotHold.patient_id).where(
        SlotHold.slot_id == slot_id)).all()
    assert len(made) == seats, f"{len(made)} holds of {seats} seats"
    assert {status for status, _, _ in made} == {"confirmed"}, made
    assert len({appointment for _, appointment, _ in made}) == seats, "two holds became one appointment"
    assert len({patient for _, _, patient in made}) == seats, "a patient held two seats"
    assert db.session.scalar(select(Slot.held_count).where(Slot.id == slot_id)) == 0


def clean_up(hospital_id: int, resident_ids: list[int]) -> None:
    slot_ids = select(Slot.id).join(Department, Department.id == Slot.department_id).where(
        Department.hospital_id == hospital_id)
    db.session.execute(delete(SlotHold).where(SlotHold.slot_id.in_(slot_ids)))
    db.session.execute(delete(Appointment).where(Appointment.slot_id.in_(slot_ids)))
    db.session.execute(delete(Slot).where(Slot.id.in_(slot_ids)))
    department_ids = select(Department.id).where(Department.hospital_id == hospital_id)
    db.session.execute(delete(Doctor).where(Doctor.department_id.in_(department_ids)))
    db.session.execute(delete(Department).where(Department.hospital_id == hospital_id))
    db.session.execute(delete(Hospital).where(Hospital.id == hospital_id))
    db.session.execute(delete(Patient).where(Patient.resident_id.in_(resident_ids)))
    db.session.execute(delete(Resident).where(Resident.id.in_(resident_ids)))
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=500)
    parser.add_argument("--seats", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
    if not url.startswith("postgres"):
        sys.exit("this benchmark measures PostgreSQL; set DATABASE_URL=postgresql://...")
    app = create_app({"DATABASE_URL": url, "ENV": "bench",
                      "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")})
    with app.app_context():
        upgrade()
        hospital_id, contended_id, held_id, own_slot_ids, resident_ids = build(
            residents=args.attempts, seats=args.seats, tag=uuid.uuid4().hex[:8])
        try:
            contended, contended_s = attempt_all(app, [(r, contended_id) for r in resident_ids])
            check_contended(contended, contended_id, args.seats)
            held, held_s = attempt_all(app, [(r, held_id) for r in resident_ids], how=hold_and_confirm)
            check_held(held, held_id, args.seats)
            baseline, baseline_s = attempt_all(app, list(zip(resident_ids, own_slot_ids)))
            assert all(isinstance(o, int) for o in baseline), Counter(o for o in baseline if isinstance(o, str))
            total = db.session.scalar(select(func.count()).select_from(Appointment).where(
                Appointment.patient_id.in_(select(Patient.id).where(Patient.resident_id.in_(resident_ids)))))
            assert total == 2 * args.seats + args.attempts
        finally:
            clean_up(hospital_id, resident_ids)

    contended_rate = args.attempts / contended_s
    held_rate = args.attempts / held_s
    baseline_rate = args.attempts / baseline_s
    print(f"contended:   {args.attempts} attempts on {args.seats} seats in {contended_s:.3f} s -> "
          f"{args.seats} booked, {args.attempts - args.seats} slot_taken, no patient twice; "
          f"{contended_rate:.0f} attempts/s")
    print(f"holds:       {args.attempts} hold-and-confirm attempts on {args.seats} seats in {held_s:.3f} s -> "
          f"{args.seats} held and booked, {args.attempts - args.seats} slot_taken, no seat held twice; "
          f"{held_rate:.0f} attempts/s")
    print(f"uncontended: {args.attempts} bookings on {args.attempts} slots in {baseline_s:.3f} s -> "
          f"{baseline_rate:.0f} bookings/s")
    print(f"ratio contended attempts/s : uncontended bookings/s = {contended_rate / baseline_rate:.2f}")
    print(f"ratio holds attempts/s : contended (direct booking) attempts/s = {held_rate / contended_rate:.2f}")


if __name__ == "__main__":
    main()
