"""Reports at a year of data: seeds 1 million messages and 100 thousand tickets (plus residents, help
alerts and appointments) into a scratch PostgreSQL database with COPY, then times each report's
service function over the whole year, next to a baseline measured in the same run
(`SELECT count(*) FROM messages`). The conversation-day rollup of the volume and bot reports is backfilled
(timed) up to the year's last day, which stays the live tail the reports aggregate from `messages`, as
today always is; those two reports are also timed with the rollup hidden (everything live), same run.

    .venv/bin/python bench/reports_seed_and_time.py \
        --database-url postgresql://root@127.0.0.1:5432/linli_reports_bench [--messages 1000000] [--tickets 100000]

The database is EMPTIED (schema dropped and migrated again): point it at a throwaway one. It is created
if missing. `--skip-seed` times an already seeded database again. Goal: each report under 500 ms.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone

import psycopg
from psycopg import sql

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_MS = 500
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
YEAR = timedelta(days=365)
QUESTIONS = ["社保卡怎么补办", "社保卡丢了怎么办", "居住证怎么办理", "停车位怎么申请", "垃圾分类几点收", "老年证去哪里办",
             "疫苗在哪里打", "电梯坏了找谁", "楼上漏水怎么办", "低保怎么申请", "快递柜在哪", "物业电话多少",
             "核酸证明在哪开", "孩子上学要什么材料", "医保报销流程", "充电桩怎么装", "宠物要登记吗", "噪音投诉"]
INTENTS = ["greet", "thanks", "faq_residence", "faq_social_card", "book_appointment", "help", "ask_human"]
CATEGORIES = ["general", "handoff", "fallback", "complaint", "help", "delivery"]
PRIORITIES = ["low", "normal", "normal", "normal", "high", "urgent"]


def ensure_database(url: str) -> None:
    target = psycopg.conninfo.conninfo_to_dict(url)
    name = target.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**target, dbname="postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(app) -> None:
    from tests.conftest import reset_schema

    reset_schema(app)


def at(rng: random.Random) -> datetime:
    return NOW - timedelta(seconds=rng.randrange(int(YEAR.total_seconds())))


def copy(conn, table: str, columns: list[str], rows) -> int:
    n = 0
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))) as cp:
        for row in rows:
            cp.write_row(row)
            n += 1
    return n


def seed(url: str, *, messages: int, tickets: int, residents: int = 20_000) -> dict:
    """Bulk-load a year of a busy street (and a smaller neighbouring one) with COPY."""
    rng = random.Random(20240501)
    counts = {}
    with psycopg.connect(url) as conn:
        copy(conn, "streets", ["id", "code", "name"], [(1, "bench-a", "甲街道"), (2, "bench-b", "乙街道")])
        copy(conn, "communities", ["id", "street_id", "name"], ((i, 1 if i <= 16 else 2, f"社区{i}") for i in range(1, 21)))
        counts["residents"] = copy(conn, "residents", [
            "id", "community_id", "name", "phone", "address", "is_elderly", "sms_opted_out", "wechat_subscribed",
            "preferred_channel", "created_at"],
            ((i, rng.randint(1, 20), f"居民{i}", f"+86139{i:08d}", "幸福路", i % 10 == 0, False, True, "wechat",
              NOW - YEAR) for i in range(1, residents + 1)))
        # One WeChat conversation per resident, and an SMS one for every fourth.
        conversations = [(i, i, "wechat") for i in range(1, residents + 1)]
        conversations += [(residents + i, i * 4, "sms") for i in range(1, residents // 4 + 1)]
        counts["conversations"] = copy(conn, "conversations", [
            "id", "resident_id", "channel", "address", "bot_sender", "fallback_streak", "needs_attention", "created_at"],
            ((cid, rid, ch, f"addr{cid}", f"bench-{cid}", 0, False, NOW - YEAR) for cid, rid, ch in conversations))
        conv_channel = {cid: ch for cid, _, ch in conversations}

        def message_rows():
            """Residents write in bursts: a few questions and the replies to them within minutes, on some days."""
            i = 0
            while i < messages:
                cid = rng.randrange(1, len(conversations) + 1)
                start = at(rng)
                for k in range(min(rng.randint(1, 5) * 2, messages - i)):
                    i += 1
                    author = "resident" if k % 2 == 0 else rng.choice(("bot", "bot", "bot", "staff"))
                    intent, text = None, rng.choice(QUESTIONS)
                    if author == "resident":
                        intent = "nlu_fallback" if rng.random() < 0.15 else rng.choice(INTENTS + [None])
                        text = text + rng.choice(("", "？", "呢", " 请问", "!"))
                    yield (i, cid, conv_channel[cid], "in" if author == "resident" else "out", author,
                           f"bench-{i}" if author == "resident" else None, "text", text, intent,
                           start + timedelta(seconds=40 * k))

        counts["messages"] = copy(conn, "messages", [
            "id", "conversation_id", "channel", "direction", "author", "external_id", "kind", "text", "intent",
            "created_at"], message_rows())

        def ticket_rows():
            for i in range(1, tickets + 1):
                created = at(rng)
                status = rng.choices(("resolved", "closed", "open", "pending"), (30, 60, 6, 4))[0]
                done = status in ("resolved", "closed")
                # An open ticket holds its conversation exclusively (unique index): open ones carry none here.
                cid = rng.randrange(1, len(conversations) + 1) if done and rng.random() < 0.8 else None
                rid = conversations[cid - 1][1] if cid else rng.randint(1, residents)
                first = created + timedelta(seconds=rng.randint(30, 4 * 3600)) if done or rng.random() < 0.5 else None
                resolved = created + timedelta(seconds=rng.randint(600, 3 * 86400)) if done else None
                yield (i, 1 if i % 10 else 2, cid, rid, "居民诉求", status, rng.choice(PRIORITIES), rng.choice(CATEGORIES),
                       rng.choice(("bot", "resident", "staff", "help_alert")), first, rng.random() < 0.08,
                       rng.random() < 0.05, resolved, resolved + timedelta(days=7) if status == "closed" else None,
                       1 if rng.random() < 0.04 else 0, rng.choice((None, None, 3, 4, 5, 5, 1, 2)) if done else None,
                       created, created)

        counts["tickets"] = copy(conn, "tickets", [
            "id", "street_id", "conversation_id", "resident_id", "subject", "status", "priority", "category", "source",
            "first_responded_at", "first_response_breached", "resolution_breached", "resolved_at", "closed_at",
            "reopened_count", "csat_score", "created_at", "updated_at"], ticket_rows())

        elders = [i for i in range(1, residents + 1) if i % 10 == 0]
        relations = ("family", "neighbour", "grid_worker")
        copy(conn, "help_contacts", ["id", "resident_id", "position", "name", "phone", "relation", "channels",
                                     "ring_seconds", "wait_seconds"],
             ((n * 3 + p + 1, rid, p + 1, f"联系人{p}", f"+86137{n * 3 + p:08d}", relations[p], "voice,sms", 30, 60)
              for n, rid in enumerate(elders) for p in range(3)))
        contact_of = {rid: n * 3 + 1 for n, rid in enumerate(elders)}

        def alert_rows():
            for i in range(1, 10_001):
                rid = rng.choice(elders)
                created = at(rng)
                accepted = rng.random() < 0.9
                position = rng.randrange(3)
                yield (i, rid, "device", "resolved" if accepted else "cancelled", 2 if rng.random() < 0.1 else 1,
                       position + 1, rng.random() < 0.05, contact_of[rid] + position if accepted else None,
                       "voice" if accepted else None,
                       created + timedelta(seconds=rng.randint(20, 900)) if accepted else None,
                       rng.choice(("false_alarm", "helped_at_home", "taken_to_hospital")) if accepted else None, created)

        counts["help_alerts"] = copy(conn, "help_alerts", [
            "id", "resident_id", "source", "status", "round", "step", "alarm", "accepted_contact_id", "accepted_via",
            "accepted_at", "outcome", "created_at"], alert_rows())

        copy(conn, "hospitals", ["id", "name", "address"], [(1, "社区医院", "")])
        copy(conn, "departments", ["id", "hospital_id", "name"], ((i, 1, f"科室{i}") for i in range(1, 9)))
        copy(conn, "doctors", ["id", "department_id", "name", "title"], ((i, i, f"医生{i}", "普通") for i in range(1, 9)))
        appointments = 50_000
        base_day = (NOW - YEAR).date()
        slots = [(i, (i % 8) + 1, base_day + timedelta(days=i % 365)) for i in range(1, appointments + 1)]
        copy(conn, "slots", ["id", "doctor_id", "department_id", "local_date", "session", "start_at", "end_at", "capacity",
                             "booked_count"],
             ((sid, dep, dep, day, "morning",
               datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(minutes=sid % 10_000),
               datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(minutes=sid % 10_000 + 30), 3, 0)
              for sid, dep, day in slots))
        copy(conn, "patients", ["id", "resident_id", "name", "relation", "id_number_encrypted", "id_number_hash",
                                "id_number_last4", "created_at"],
             ((i, i, f"病人{i}", "self", "x", f"h{i}", "0000", NOW - YEAR) for i in range(1, residents + 1)))
        counts["appointments"] = copy(conn, "appointments", [
            "id", "slot_id", "seat_no", "patient_id", "booked_by_resident_id", "department_id", "local_date", "status",
            "created_at"],
            ((sid, sid, 1, (sid % residents) + 1, (sid % residents) + 1, dep, day,
              rng.choices(("fulfilled", "cancelled", "noshow"), (80, 12, 8))[0], NOW - YEAR)
             for sid, dep, day in slots))
        copy(conn, "faq_articles", ["id", "topic", "title", "answer", "uses", "updated_at"],
             ((i, f"topic_{i}", f"主题{i}", "答案", rng.randint(0, 5000), NOW) for i in range(1, 41)))
        for table in ("streets", "communities", "residents", "conversations", "messages", "tickets", "help_contacts",
                      "help_alerts", "hospitals", "departments", "doctors", "slots", "patients", "appointments",
                      "faq_articles"):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}))").format(
                sql.Literal(table), sql.Identifier(table)))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return counts


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm the caches the way a second visit to the page would
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/linli_reports_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-seed", action="store_true")
    args = parser.parse_args()

    from sqlalchemy import delete, text

    from app.core.extensions import db
    from app.models import RollupWatermark
    from app.services import reports
    from app.services.reports import rollup
    from tests.conftest import make_test_app

    app = make_test_app(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url)
    if not args.skip_seed:
        ensure_database(args.database_url)
        migrate(app)
        t0 = time.perf_counter()
        counts = seed(args.database_url, messages=args.messages, tickets=args.tickets)
        print(f"seeded in {time.perf_counter() - t0:.1f} s: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))

    with app.app_context():
        year = reports.build_scope(street_id=1, start=(NOW - YEAR).date(), end=(NOW - timedelta(days=1)).date())
        month = reports.build_scope(street_id=1, start=date(2024, 12, 1), end=date(2024, 12, 31), community_id=3)
        # A refresh as if run on the year's last day: every earlier day rolled up, 2024-12-31 the live tail.
        refreshed_at = rollup.midnight_utc(year.end) + rollup.SETTLE
        t0 = time.perf_counter()
        backfill = rollup.refresh(now=refreshed_at, full=True)
        print(f"rollup backfill: {backfill.rows:,} conversation-days in {time.perf_counter() - t0:.1f} s, "
              f"complete before {backfill.complete_before}")
        t0 = time.perf_counter()
        routine = rollup.refresh(now=refreshed_at)
        print(f"hourly refresh (recomputes {routine.first_day} .. {backfill.complete_before}): "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms, {routine.rows:,} rows")
        db.session.execute(text("ANALYZE conversation_days"))
        db.session.commit()
        baseline, _ = timed(lambda: db.session.execute(text("SELECT count(*) FROM messages")).scalar(), args.runs)
        print(f"\nbaseline SELECT count(*) FROM messages: {baseline:.1f} ms (median of {args.runs})\n")
        print("| report | scope | median ms | max ms | × baseline | goal |")
        print("|---|---|---:|---:|---:|---|")
        worst = 0.0
        for name in reports.TITLES:
            for label, scope in (("street, 365 days", year), ("one community, 31 days", month)):
                median, slowest = timed(lambda: reports.run(name=name, scope=scope), args.runs)
                worst = max(worst, median)
                print(f"| {name} | {label} | {median:.1f} | {slowest:.1f} | {median / baseline:.1f} | "
                      f"{'ok' if median < GOAL_MS else 'SLOW'} |")
        # The same two reports without the rollup (no watermark: every day live), rolled back afterwards.
        db.session.execute(delete(RollupWatermark))
        for name in ("volume", "bot"):
            median, slowest = timed(lambda: reports.run(name=name, scope=year), args.runs)
            print(f"| {name}, without the rollup | street, 365 days | {median:.1f} | {slowest:.1f} | "
                  f"{median / baseline:.1f} | (comparison) |")
        db.session.rollback()
        db.session.remove()
    print(f"\nslowest report median: {worst:.1f} ms (goal < {GOAL_MS} ms)")
    return 0 if worst < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
