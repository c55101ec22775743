"""Latency of one-key help: from the device's HTTP request to the first call request at the Twilio stub.

Runs the app under gunicorn and N `flask worker` processes, against the Twilio stub on loopback, and
measures in the same run a baseline: one call request straight to the stub with the same client.

    .venv/bin/python bench/help_latency.py --database-url postgresql://root@127.0.0.1:5432/linli_bench \
        --redis-url redis://127.0.0.1:6379/13 [--workers 4] [--web 4] [--burst 100] [--singles 30]

The database and the Redis database given are EMPTIED: point them at throwaway ones.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, TwilioStub  # noqa: E402

CALLS_PATH = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Calls.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(name: str, ms: list[float]) -> str:
    return (f"{name:<42} n={len(ms):>4}  p50={statistics.median(ms):7.1f} ms  p99={pct(ms, 99):7.1f} ms  "
            f"max={max(ms):7.1f} ms")


def prepare(env: dict, residents: int) -> list[dict]:
    """Empty the database, migrate, and register `residents` elders, each with a device and a 2-step chain."""
    os.environ.update(env)
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.core.extensions import db
    from app.core.redis_client import get_redis
    from app.models import HelpContact
    from app.services import help as help_service
    from tests.factories import ResidentFactory

    app = create_app()
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        get_redis().flushdb()
        people = []
        for i in range(residents):
            elder = ResidentFactory(is_elderly=True, name=f"老人{i}", address=f"幸福路{i}号")
            db.session.commit()
            phone = f"+86135{i:08d}"
            db.session.add_all([
                HelpContact(resident_id=elder.id, position=1, name=f"家属{i}", phone=phone, relation="family",
                            channels="voice,sms"),
                HelpContact(resident_id=elder.id, position=2, name="值班室", phone="+8613800000099",
                            relation="staff", channels="voice"),
            ])
            db.session.commit()
            device, secret = help_service.register_device(device_uid=f"BENCH-{i:04d}", resident_id=elder.id)
            people.append({"uid": device.device_uid, "secret": secret, "phone": phone})
    return people


def first_call_times(stub: TwilioStub) -> dict[str, float]:
    seen: dict[str, float] = {}
    for record in stub.calls_to(CALLS_PATH):
        to = record["form"].get("To")
        seen.setdefault(to, record["time"])
    return seen


def press(base: str, person: dict, press_id: str) -> float:
    from app.services.help import sign

    ts = int(time.time())
    started = time.time()
    answer = requests.post(f"{base}/api/devices/{person['uid']}/alerts", json={"press_id": press_id, "timestamp": ts},
                           headers={"X-Linli-Signature": sign(person["secret"], person["uid"], press_id, ts)},
                           timeout=30)
    if answer.status_code != 201:
        raise RuntimeError(f"press refused: {answer.status_code} {answer.text[:200]}")
    return started


def wait_for_calls(stub: TwilioStub, phones: set[str], timeout: float = 60) -> dict[str, float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = first_call_times(stub)
        if phones <= seen.keys():
            return seen
        time.sleep(0.01)
    raise RuntimeError(f"{len(phones - first_call_times(stub).keys())} alerts never reached the stub")


def baseline(stub: TwilioStub, n: int = 50) -> list[float]:
    """The stub's own round trip with the same twilio client: the floor under every figure."""
    from integrations.twilio import TwilioTransport

    transport = TwilioTransport(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, stub.base_url)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        transport.place_call("+8613000000000", "http://127.0.0.1/x", "http://127.0.0.1/y", 30)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--workers", type=int, default=4, help="flask worker processes (escalation queue)")
    parser.add_argument("--web", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--singles", type=int, default=30)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=8, help="alerts before measuring (fresh workers' first jobs)")
    args = parser.parse_args()

    stub = TwilioStub().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "PUBLIC_BASE_URL": base,
           "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
           "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": stub.base_url, "SECRET_KEY": "bench-secret",
           "RASA_URL": "http://127.0.0.1:9", "FLASK_APP": "wsgi", "ENV": "bench"}
    people = prepare(env, args.warmup + args.singles + args.burst)
    child_env = {**os.environ, **env}
    procs = [subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(args.web), "-b", f"127.0.0.1:{port}",
                               "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=child_env,
                              stdout=subprocess.DEVNULL, start_new_session=True)]
    procs += [subprocess.Popen([sys.executable, "-m", "flask", "worker", "--queues", "escalation"], cwd=ROOT,
                               env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True) for _ in range(args.workers)]
    try:
        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"{base}/openapi.json", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(2)  # let the workers register on the queue

        base_ms = baseline(stub)
        stub.reset()

        cold_ms = []
        for i, person in enumerate(people[:args.warmup]):
            started = press(base, person, f"w-{i}")
            cold_ms.append((wait_for_calls(stub, {person["phone"]})[person["phone"]] - started) * 1000)
        people = people[args.warmup:]

        singles = people[:args.singles]
        single_ms = []
        for i, person in enumerate(singles):
            started = press(base, person, f"s-{i}")
            seen = wait_for_calls(stub, {person["phone"]})
            single_ms.append((seen[person["phone"]] - started) * 1000)

        burst = people[args.singles:]
        gap = args.burst_seconds / max(1, len(burst))
        starts: dict[str, float] = {}
        threads = []

        def fire(person, i):
            starts[person["phone"]] = press(base, person, f"b-{i}")

        t_begin = time.time()
        for i, person in enumerate(burst):
            target = t_begin + i * gap
            time.sleep(max(0.0, target - time.time()))
            thread = threading.Thread(target=fire, args=(person, i))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(60)
        seen = wait_for_calls(stub, {p["phone"] for p in burst})
        burst_ms = [(seen[p] - starts[p]) * 1000 for p in starts]

        print(f"web workers={args.web} escalation workers={args.workers}")
        print(summary("baseline: one call request to the stub", base_ms))
        if cold_ms:
            print(summary("warm-up (first jobs of fresh workers)", cold_ms))
        print(summary("single alerts: press -> first call at stub", single_ms))
        print(summary(f"{len(burst)} alerts in {args.burst_seconds:.0f} s: press -> first call", burst_ms))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        stub.stop()


if __name__ == "__main__":
    main()
