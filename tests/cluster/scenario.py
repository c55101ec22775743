"""The faults scenario: steady traffic of every kind through the balancer while hosts die and a worker is cut off.

    t = 0.25 T  kill -9 web1            (nginx skips it; WeChat's retries reach web2)
    t = 0.40 T  kill -9 rasa1           (turns it held fail over to the app's apology or the outbox)
    t = 0.50 T  worker2 cut from Redis  for 10 s (silently dropped packets, not refusals)
    t = 0.75 T  kill -9 worker1         (its jobs are found again by worker2's sweeps: the database is the record)

Then the traffic stops and the run waits until everything sent has its answer (or the drain time runs out), and
counts, at the stubs and in the database, what got through: `Figures` (tests/cluster/traffic.py).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.cluster.cluster import Cluster
from tests.cluster.traffic import TEXTS, Driver, Figures, rasa_rate, seed, tally
from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID

PARTITION_SECONDS = 10.0


def faults(cluster: Cluster, seconds: float, log: list[str]) -> None:
    t0 = time.monotonic()

    def at(fraction: float) -> None:
        time.sleep(max(0.0, t0 + fraction * seconds - time.monotonic()))

    def note(what: str) -> None:
        log.append(f"t={time.monotonic() - t0:5.1f}s {what}")

    at(0.25)
    cluster.host("web1").power_off()
    note("kill -9 web1")
    at(0.40)
    cluster.host("rasa1").power_off()
    note("kill -9 rasa1")
    at(0.50)
    worker2, redis_host = cluster.host("worker2"), cluster.host("redis")
    worker2.cut_from(redis_host)
    note("worker2 cut from redis")
    time.sleep(PARTITION_SECONDS)
    worker2.heal_from(redis_host)
    note("worker2 reaches redis again")
    at(0.75)
    cluster.host("worker1").power_off()
    note("kill -9 worker1")


def run(cluster: Cluster, *, seconds: float, per_second: float, drain: float = 180.0) -> tuple[Figures, list[str]]:
    """Traffic for `seconds` at `per_second` events (WeChat 60 %, SMS 15 %, help presses 10 %, bookings 15 %)."""
    events = int(seconds * per_second)
    n_alerts, n_bookings = max(2, events // 10), max(4, events * 15 // 100)
    data = seed(elders=n_alerts, patients=n_bookings, capacity=max(1, n_bookings // 2))
    driver = Driver(cluster)
    plan: list[tuple] = []
    alerts, bookings = iter(data["people"]), iter(data["bookers"])
    # One message per resident (a fresh openid or phone each), so every reply to an address answers that message.
    expected = {"wechat": [], "sms": [], "ids": {}, "people": data["people"], "bookers": data["bookers"]}
    for n in range(events):
        kind = n % 20
        if kind < 2:
            person = next(alerts, None)
            if person is not None:
                plan.append((driver.press, person, f"press-{n}"))
                continue
        if kind < 5:
            booker = next(bookings, None)
            if booker is not None:
                plan.append((driver.book, *booker, data["slot_id"]))
                continue
        if kind < 8:
            phone = f"+86130{n:08d}"  # not +86139: the elders (ResidentFactory) get help notices there
            expected["sms"].append(phone)
            expected["ids"][phone] = f"SMcluster{n:024d}"
            plan.append((driver.sms, phone, TEXTS[n % len(TEXTS)], expected["ids"][phone]))
        else:
            openid = f"oCluster{n:020d}"
            expected["wechat"].append(openid)
            expected["ids"][openid] = str(7_000_000_000 + n)
            plan.append((driver.wechat, openid, TEXTS[n % len(TEXTS)], 7_000_000_000 + n))
    # Whatever the plan did not reach (a short run) is pressed and booked after the faults.
    plan += [(driver.press, p, f"press-late-{i}") for i, p in enumerate(alerts)]
    plan += [(driver.book, *b, data["slot_id"]) for b in bookings]

    log: list[str] = []
    chaos = threading.Thread(target=faults, args=(cluster, seconds, log), daemon=True)
    started = time.monotonic()
    chaos.start()
    with ThreadPoolExecutor(48) as pool:
        for i, (fn, *args) in enumerate(plan):
            time.sleep(max(0.0, started + i / per_second - time.monotonic()))
            pool.submit(fn, *args)
    chaos.join()
    deadline = time.monotonic() + drain
    figures = tally(cluster, driver, data, expected=expected)
    while figures.lost and time.monotonic() < deadline:
        time.sleep(3)
        figures = tally(cluster, driver, data, expected=expected)
    log.append(f"all answered {max(0.0, time.monotonic() - started - seconds):.0f}s after the traffic stopped")
    return figures, log


def rasa_ratio(cluster: Cluster, *, turns: int, concurrency: int = 8) -> tuple[float, float]:
    """Bot turns/s of one Rasa server (rasa1 straight) and of two (the balancer's bot port), in this run."""
    rasa_rate(cluster.bot_url, turns=concurrency * 2, concurrency=concurrency, tag="warm")
    one = rasa_rate(f"http://{cluster.host('rasa1').address}:5005", turns=turns, concurrency=concurrency, tag="one")
    two = rasa_rate(cluster.bot_url, turns=turns, concurrency=concurrency, tag="two")
    return one, two


def web_rate(cluster: Cluster, *, events: int, concurrency: int = 16) -> float:
    """Webhook messages/s through the balancer that the app answers without the bot (WeChat subscribe events):
    the web tier's own cost per message (the database and Redis round trips included)."""
    driver = Driver(cluster)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: driver.subscribe(f"oCapacity{n:019d}"), range(events)))
    if driver.ledger.unanswered:
        raise AssertionError(f"{len(driver.ledger.unanswered)} events unanswered")
    return events / (time.perf_counter() - started)


def alert_rate(cluster: Cluster, *, alerts: int, concurrency: int = 16) -> float:
    """Help alerts/s from the presses to the first call of each at the Twilio stub, all pressed at once."""
    data = seed(elders=alerts, patients=0, capacity=1, tag="capacity")
    driver = Driver(cluster)
    started = time.time()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda p: driver.press(p, "capacity"), data["people"]))
    phones = {p["phone"] for p in data["people"]}
    deadline = time.monotonic() + 120
    while True:
        first = {}
        for call in cluster.twilio.calls_to(f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Calls.json"):
            first.setdefault(call["form"].get("To"), call["time"])
        if phones <= first.keys():
            return alerts / (max(first[p] for p in phones) - started)
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(phones - first.keys())} alerts never placed their first call")
        time.sleep(0.05)


def redis_restart(cluster: Cluster, *, n: int = 10) -> tuple[Figures, list[str], int]:
    """Redis restarted empty while work waits in it: the workers frozen, SMS replies and help alerts queued, then
    Redis killed and started with nothing, the workers thawed, and WeChat sending again messages answered before.
    The database is the record: the sweeps queue again what Redis forgot, and the unique message rows answer the
    retried WeChat messages' second delivery with nothing new."""
    data = seed(elders=n, patients=0, capacity=1, tag="restart")
    driver = Driver(cluster)
    openids = [f"oRestart{i:020d}" for i in range(n)]
    for i, openid in enumerate(openids):
        driver.wechat(openid, TEXTS[i % len(TEXTS)], 8_000_000_000 + i)
    # WeChat's answers are in; now their dedup keys, the queues and the bot's trackers are all in Redis only.
    workers = [cluster.host(name) for name in ("worker1", "worker2")]
    log = []
    for host in workers:
        host.freeze()
    phones = [f"+86132{i:08d}" for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: driver.sms(phones[i], TEXTS[i % len(TEXTS)], f"SMrestart{i:025d}"), range(n)))
        list(pool.map(lambda p: driver.press(p, "restart"), data["people"]))
    queued = sum(cluster.redis().llen(f"rq:queue:{q}") for q in ("escalation", "outbound"))
    log.append(f"{queued} jobs waiting in Redis (escalation and outbound queues); Redis killed and started empty")
    cluster.restart_redis_empty()
    for host in workers:
        host.freeze(thaw=True)
    for i, openid in enumerate(openids):  # WeChat's retries of messages answered before the restart
        driver.wechat(openid, TEXTS[i % len(TEXTS)], 8_000_000_000 + i)
    started = time.monotonic()
    ids = {**{openid: str(8_000_000_000 + i) for i, openid in enumerate(openids)},
           **{phone: f"SMrestart{i:025d}" for i, phone in enumerate(phones)}}
    expected = {"wechat": openids, "sms": phones, "ids": ids, "people": data["people"], "bookers": []}
    figures = tally(cluster, driver, data, expected=expected)
    while figures.lost and time.monotonic() < started + 180:
        time.sleep(3)
        figures = tally(cluster, driver, data, expected=expected)
    log.append(f"everything answered {time.monotonic() - started:.0f}s after the restart")
    return figures, log, queued
