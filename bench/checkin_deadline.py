"""Missed daily check-ins at the deadline: N enrolled residents, none checked in; the time from the detector's run
to every resident's first call at the Twilio stub (real twilio client, N `flask worker` processes).

Baseline in the same run, on the same workers and stub: the same count of plain help alerts raised one after
another (help.raise_alert, as presses would), timed the same way, to their first calls.

    .venv/bin/python bench/checkin_deadline.py --database-url postgresql://root@127.0.0.1:5432/linli_care_bench \
        --redis-url redis://127.0.0.1:6379/14 [--residents 10000] [--workers 4]

The database and the Redis database given are EMPTIED: point them at throwaway ones.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.help_latency import CALLS_PATH, pct  # noqa: E402
from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, TwilioStub  # noqa: E402


def prepare(app, n: int) -> list[int]:
    """Empty the database, migrate, insert 2n residents in bulk: the first n enrolled (due 00:00, two days ago)."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.core.extensions import db
    from app.core.redis_client import get_redis

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        get_redis().flushdb()
        conn = db.session.connection()
        conn.execute(text("INSERT INTO streets (name, code) VALUES ('幸福街道', 'bench')"))
        conn.execute(text("INSERT INTO communities (street_id, name) SELECT id, '幸福社区' FROM streets"))
        conn.execute(text(
            "INSERT INTO residents (name, phone, address, community_id, is_elderly, sms_opted_out, wechat_subscribed, "
            "preferred_channel, created_at) "
            "SELECT '老人' || g, '+86135' || lpad(g::text, 8, '0'), '幸福路' || g || '号', "
            "(SELECT id FROM communities), true, false, false, 'sms', now() FROM generate_series(1, :m) g"),
            {"m": 2 * n})
        conn.execute(text(
            "INSERT INTO help_contacts (resident_id, position, name, phone, relation, channels, ring_seconds, "
            "wait_seconds) SELECT id, 1, '家属', '+86136' || lpad(id::text, 8, '0'), 'family', 'voice', 30, 60 "
            "FROM residents"))
        conn.execute(text(
            "INSERT INTO checkin_enrolments (resident_id, due_time, active, enrolled_at) "
            "SELECT id, '00:00', true, now() - interval '2 days' FROM residents ORDER BY id LIMIT :n"), {"n": n})
        db.session.commit()
        ids = [r[0] for r in db.session.execute(text("SELECT id FROM residents ORDER BY id")).all()]
    return ids


def wait_calls(stub: TwilioStub, want: int, timeout: float) -> list[float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = stub.calls_to(CALLS_PATH)
        if len(records) >= want:
            return sorted(r["time"] for r in records)[:want]
        time.sleep(0.2)
    raise RuntimeError(f"only {len(stub.calls_to(CALLS_PATH))} of {want} first calls within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--residents", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    stub = TwilioStub().start()
    env = {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "PUBLIC_BASE_URL": "http://127.0.0.1:9",
           "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
           "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": stub.base_url, "SECRET_KEY": "bench-secret-" + "x" * 32,
           "RASA_URL": "http://127.0.0.1:9", "FLASK_APP": "wsgi", "ENV": "bench"}
    os.environ.update(env)
    from sqlalchemy import text

    from app import create_app
    from app.core.extensions import db
    from app.services import care
    from app.services import help as help_service

    app = create_app()
    n = args.residents
    t = time.time()
    ids = prepare(app, n)
    print(f"prepared {2 * n} residents ({n} enrolled) in {time.time() - t:.1f} s")
    child_env = {**os.environ, **env}
    # Each worker on escalation and outbound (the contacts' notices), as `flask worker` runs in production.
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "worker", "--queues", "escalation,outbound"],
                              cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(args.workers)]
    try:
        time.sleep(3)
        with app.app_context():
            # Baseline: n plain help alerts of the residents not enrolled, raised one after another.
            stub.reset()
            t0 = time.time()
            for resident_id in ids[n:]:
                help_service.raise_alert(resident_id=resident_id, source="api")
            raised = time.time() - t0
            base_calls = wait_calls(stub, n, args.timeout)
            base_total = base_calls[-1] - t0
            db.session.execute(text("UPDATE help_alerts SET status = 'resolved', step_due_at = NULL"))
            db.session.commit()
        time.sleep(2)
        stub.reset()
        with app.app_context():
            t0 = time.time()
            found = care.detect_missed()
            detected = time.time() - t0
        calls = wait_calls(stub, n, args.timeout)
        total = calls[-1] - t0
        lat = [c - t0 for c in calls]
        print(f"baseline: {n} help alerts raised in {raised:.1f} s; last first call {base_total:.1f} s after the first "
              f"raise (p50 {pct([c - (base_calls[0] - 0) for c in base_calls], 50):.1f} s from the first call)")
        print(f"check-in: {found['missed']} missed check-ins detected (marked, batches queued) in {detected:.2f} s")
        print(f"check-in: first calls after the detector's start: p50 {pct(lat, 50):.1f} s, p99 {pct(lat, 99):.1f} s, "
              f"last {total:.1f} s (goal: within 60 s of the deadline, plus up to one 15 s detector period)")
        print(f"ratio (missed check-ins, last first call / baseline, last first call): {total / base_total:.2f}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(10)
        stub.stop()


if __name__ == "__main__":
    main()
