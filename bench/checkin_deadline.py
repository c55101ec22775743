"""Missed daily check-ins at the deadline: N enrolled residents, none checked in; the time from the detector's run
to every resident's first call at the Twilio stub (real twilio client, N `flask worker` processes).

Baseline in the same run, on the same workers and stub: plain help alerts raised one after another
(help.raise_alert, as presses would; as many as residents, at most 2000 unless --baseline), timed the same way to
their first calls; the ratio compares residents reaching their first call per second.

    .venv/bin/python bench/checkin_deadline.py --database-url postgresql://root@127.0.0.1:5432/linli_care_bench \
        --redis-url redis://127.0.0.1:6379/14 [--residents 10000] [--workers 4] [--baseline 2000]

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


def call_times(stub: TwilioStub) -> list[float]:
    """Arrival times of the call requests, read without the deep copy of calls_to: at 10,000 records that copy,
    made under the log's lock, would stall the stub's handler threads the bench is timing."""
    log = stub.call_log
    with log._lock:
        return [r["time"] for r in log._records if r["path"].startswith(CALLS_PATH)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended (a PostgreSQL backend) took its count with it
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its backends do the queries' work)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as f:
                    if f.read().strip() in ("postgres", "postmaster"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def wait_calls(stub: TwilioStub, want: int, timeout: float) -> list[float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        times = call_times(stub)  # each record's time is its arrival: polling once a second loses no precision
        if len(times) >= want:
            return sorted(times)[:want]
        time.sleep(1.0)
    raise RuntimeError(f"only {len(call_times(stub))} of {want} first calls within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--residents", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--baseline", type=int, default=None,
                        help="plain alerts in the baseline (default: as many as residents, at most 2000)")
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
    b = min(args.baseline or min(n, 2000), n)
    t = time.time()
    ids = prepare(app, n)
    print(f"prepared {2 * n} residents ({n} enrolled) in {time.time() - t:.1f} s; {args.workers} workers")
    child_env = {**os.environ, **env}
    # Each worker on escalation and outbound (the contacts' notices), as `flask worker` runs in production.
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "worker", "--queues", "escalation,outbound"],
                              cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(args.workers)]
    try:
        time.sleep(3)
        with app.app_context():
            # Baseline: b plain help alerts of residents not enrolled, raised one after another (as presses would).
            stub.reset()
            pids = [proc.pid for proc in procs]
            cpu0 = cpu_seconds(pids)
            t0 = time.time()
            for resident_id in ids[n:n + b]:
                help_service.raise_alert(resident_id=resident_id, source="api")
            raised = time.time() - t0
            base_calls = wait_calls(stub, b, args.timeout)
            base_total = base_calls[-1] - t0
            base_cpu = cpu_seconds(pids) - cpu0  # the workers' share; the raises themselves ran in this process
            db.session.execute(text("UPDATE help_alerts SET status = 'resolved', step_due_at = NULL"))
            db.session.commit()
        time.sleep(2)
        stub.reset()
        cpu0, own0, pg0 = cpu_seconds(pids), sum(os.times()[:2]), cpu_seconds(postgres_pids())
        with app.app_context():
            t0 = time.time()
            found = care.detect_missed()
            detected = time.time() - t0
        calls = wait_calls(stub, n, args.timeout)
        total = calls[-1] - t0
        wave_cpu = cpu_seconds(pids) - cpu0
        stub_cpu, pg_cpu = sum(os.times()[:2]) - own0, cpu_seconds(postgres_pids()) - pg0
        lat = [c - t0 for c in calls]
        with app.app_context():
            alerts, attempts = db.session.execute(text(
                "SELECT (SELECT count(*) FROM help_alerts WHERE source = 'checkin'), "
                "(SELECT count(*) FROM escalation_steps s JOIN help_alerts a ON a.id = s.alert_id "
                "WHERE a.source = 'checkin' AND s.round = 1 AND s.step = 1)")).one()
        base_rate, rate = b / base_total, n / total
        print(f"baseline: {b} help alerts raised one by one in {raised:.1f} s; last first call {base_total:.1f} s "
              f"after the first raise: {base_rate:.0f} alerts/s to their first call "
              f"(at that rate {n} would take {n / base_rate:.0f} s)")
        print(f"check-in: {found['missed']} missed check-ins detected (marked, batches queued) in {detected:.2f} s; "
              f"{alerts} alerts, {attempts} first attempts, {len(call_times(stub))} call requests at the stub")
        print(f"check-in: first calls after the detector's start: p50 {pct(lat, 50):.1f} s, p99 {pct(lat, 99):.1f} s, "
              f"last {total:.1f} s: {rate:.0f} residents/s (goal: all within 60 s of the deadline, plus up to one "
              f"5 s detector period)")
        print(f"worker CPU: baseline {1000 * base_cpu / b:.1f} ms per alert (the raise itself ran in the bench "
              f"process), check-in wave {1000 * wave_cpu / n:.1f} ms per resident (raise included); during the wave "
              f"the stub (this process) {1000 * stub_cpu / n:.1f} ms and PostgreSQL (every backend, other users' "
              f"too) {1000 * pg_cpu / n:.1f} ms per resident; {wave_cpu + stub_cpu + pg_cpu:.0f} CPU-seconds in "
              f"{total:.0f} s on {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end")
        print(f"ratio (residents to first call per second, check-in wave / baseline alerts): {rate / base_rate:.2f}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(10)
        stub.stop()


if __name__ == "__main__":
    main()
