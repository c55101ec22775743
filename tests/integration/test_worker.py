"""A job enqueued on the real Redis runs in a real worker process started by the Flask CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import time

from sqlalchemy import func, select

from app.core import tasks
from app.core.extensions import db
from app.models import Schedule, Slot
from tests.conftest import TEST_SETTINGS
from tests.factories import DoctorFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_env(app, **extra) -> dict:
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()}}
    env.update(DATABASE_URL=app.config["DATABASE_URL"], REDIS_URL=app.config["REDIS_URL"], FLASK_APP="wsgi")
    env.update(extra)
    return env


def test_a_job_on_the_real_queue_runs_in_a_worker_process_and_changes_the_database(app, committed):
    doctor = DoctorFactory()
    for weekday in range(7):
        db.session.add(Schedule(doctor_id=doctor.id, weekday=weekday, session="morning", start_time=time(8, 0),
                                end_time=time(9, 0), slot_minutes=30, capacity_per_slot=2))
    db.session.commit()
    assert db.session.scalar(select(func.count(Slot.id))) == 0

    assert tasks.later("booking.generate_upcoming_slots", job_id="test-generate-slots")
    done = subprocess.run(
        [sys.executable, "-m", "flask", "worker", "--burst", "--queues", "default"],
        cwd=ROOT, env=worker_env(app), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    db.session.expire_all()
    # 14 days of one-hour mornings at 30-minute slots: two slots a day.
    assert db.session.scalar(select(func.count(Slot.id)).where(Slot.doctor_id == doctor.id)) == 28
