"""Conversation load: simulated residents chatting with the real trained bot through the signed WeChat webhook.

Two phases in one run, with the same script (booking, FAQ and handoff conversations mixed), driven by locust
used as a library:
  baseline  each resident talks to Rasa's REST channel directly (the bot's own cost)
  webhook   each resident talks through POST /wechat of the app under gunicorn (signature, XML, dedup, storage,
            routing, the bot call, then the passive reply or, past the 5-second budget, the 客服 outbox)
Prints p50/p99 reply latency of each, what the webhook adds, messages/s, the share of passive replies versus
客服 (outbox) fallbacks, and checks that every message was answered exactly once (passive replies counted from
the HTTP answers, 客服 replies from the outbox rows of each turn, per MsgId).

The real bot is required: RASA_URL naming a Rasa server that answers (its action server must call this
bench's app: LINLI_API_URL=http://127.0.0.1:$BENCH_APP_PORT, BOT_SERVICE_TOKEN=$BENCH_BOT_TOKEN), or --start-bot
to start `rasa run` and `rasa run actions` from bot/.venv with the trained model (`make bot-model`).

Environment: DATABASE_URL (PostgreSQL, migrated here), TEST_REDIS_URL or REDIS_URL, BENCH_RESIDENTS (50),
BENCH_SECONDS (120 per phase), BENCH_APP_PORT (5000), BENCH_BOT_TOKEN (bench-bot-token).
Usage: python bench/conversation_load.py [--start-bot] [--seconds N] [--residents N]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOT_DIR = os.path.join(ROOT, "bot")
RASA = os.path.join(BOT_DIR, ".venv", "bin", "rasa")
MODEL = os.path.join(BOT_DIR, "models", "linli.tar.gz")
WECHAT_TOKEN = "bench-wechat-token"

# One conversation is a list of turns; a resident picks one by weight, plays it, then picks again.
CONVERSATIONS = {
    "booking": (35, ["我要挂号", "内科", "明天上午", "1", "谢谢"]),
    "faq": (50, ["居住证怎么办", "医保卡丢了", "高龄津贴怎么申请", "老年卡怎么办", "谢谢"]),
    "handoff": (15, ["你好", "转人工"]),
}
THINK_SECONDS = (0.5, 2.0)  # a resident reads the answer, then types
# Which conversations run (--mix): without "handoff" every message of both paths goes to the bot, so the
# two phases do the same bot work and their ratio is the app's added latency.
MIX = set(CONVERSATIONS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status < 500
    except Exception as exc:  # noqa: BLE001 (an HTTP error status still means something answers)
        return bool(getattr(exc, "code", None)) and exc.code < 500


def wait_for(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited")
        if answers(url):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {seconds}s")


def signed_query() -> str:
    """A fresh signature for one request, as WeChat signs each delivery: its own nonce and timestamp.

    Plain mode's signature does not cover the body, so the app refuses a second body under a signature it has
    seen (only the same body again, WeChat's retry, passes): one query reused for many messages would be 403s.
    """
    from wechatpy.utils import WeChatSigner

    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    signer = WeChatSigner()
    signer.add_data(WECHAT_TOKEN, ts, nonce)
    return f"signature={signer.signature}&timestamp={ts}&nonce={nonce}"


def text_xml(openid: str, text: str, msg_id: int) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>")


# --- the load: locust as a library (imported late: it monkey-patches the process with gevent) -------------

def run_phase(*, mode: str, host: str, residents: int, seconds: float, run_id: str) -> dict:
    """Play the script for `seconds` with `residents` users; per message: sent time, latency, passive text."""
    from gevent import sleep as gsleep
    from locust import HttpUser, between, events, task
    from locust.env import Environment

    records: list[dict] = []
    msg_ids = itertools.count(1)
    names = [n for n in CONVERSATIONS if n in MIX]
    weights = [CONVERSATIONS[n][0] for n in names]

    class Resident(HttpUser):
        wait_time = between(*THINK_SECONDS)

        def on_start(self):
            self.openid = f"oBench{run_id}{next(msg_ids):05d}"
            self.rng = random.Random(self.openid)

        @task
        def converse(self):
            name = self.rng.choices(names, weights)[0]
            for text in CONVERSATIONS[name][1]:
                msg_id = int(f"{run_id}{next(msg_ids):09d}")
                sent = time.time()
                if mode == "rasa":
                    response = self.client.post("/webhooks/rest/webhook", json={"sender": self.openid,
                                                                                "message": text},
                                                name="rasa", timeout=60)
                else:
                    response = self.client.post(f"/wechat?{signed_query()}", data=text_xml(self.openid, text, msg_id)
                                                .encode(), headers={"Content-Type": "text/xml"},
                                                name="wechat", timeout=60)
                body = response.text or ""
                records.append({"text": text, "body": body[:200], "msg_id": msg_id, "openid": self.openid, "conversation": name, "sent": sent,
                                "latency": time.time() - sent, "status": response.status_code,
                                "passive": mode == "wechat" and body.startswith("<xml"),
                                "success": body == "success"})
                gsleep(self.rng.uniform(*THINK_SECONDS))

    env = Environment(user_classes=[Resident], host=host, events=events)
    runner = env.create_local_runner()
    runner.start(residents, spawn_rate=max(1, residents // 5))
    started = time.time()
    while time.time() - started < seconds:
        gsleep(0.5)
    runner.quit()
    return {"records": records, "seconds": time.time() - started}


# --- the check: every message answered exactly once ------------------------------------------------------

def outbox_by_msg_id(database_url: str, msg_ids: list[int]) -> tuple[dict[int, int], dict[int, float]]:
    """Per MsgId, how many 客服 replies were queued for its turn, and when the first was (epoch seconds)."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    counts, first = defaultdict(int), {}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.external_id, o.dedup_key, extract(epoch from o.created_at) FROM messages m "
            "JOIN outbound_messages o ON o.dedup_key LIKE 'turn:' || m.id || ':%%' "
            "WHERE m.channel = 'wechat' AND m.direction = 'in' AND m.external_id = ANY(%s)",
            ([str(i) for i in msg_ids],)).fetchall()
    for external_id, _, created in rows:
        counts[int(external_id)] += 1
        first[int(external_id)] = min(first.get(int(external_id), float(created)), float(created))
    return counts, first


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


# --- processes ---------------------------------------------------------------------------------------------

def start_bot(app_port: int, bot_token: str, logs: str) -> tuple[str, list[subprocess.Popen]]:
    if not (os.path.exists(RASA) and os.path.exists(MODEL)):
        raise SystemExit("the bot is not installed and trained: run `make bot-model` first")
    actions_port, rasa_port = free_port(), free_port()
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "LINLI_API_URL": f"http://127.0.0.1:{app_port}", "BOT_SERVICE_TOKEN": bot_token,
           "ACTION_SERVER_URL": f"http://127.0.0.1:{actions_port}/webhook", "BOT_REDIS_HOST": "127.0.0.1",
           "BOT_REDIS_PORT": "6379", "BOT_REDIS_PASSWORD": "", "BOT_TRACKER_REDIS_DB": "6", "BOT_LOCK_REDIS_DB": "7"}
    actions = subprocess.Popen([RASA, "run", "actions", "--port", str(actions_port), "--actions", "actions"],
                               cwd=BOT_DIR, env=env, stdout=open(os.path.join(logs, "actions.log"), "w"),
                               stderr=subprocess.STDOUT)
    rasa = subprocess.Popen([RASA, "run", "--enable-api", "--port", str(rasa_port), "--model", MODEL,
                             "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"],
                            cwd=BOT_DIR, env=env, stdout=open(os.path.join(logs, "rasa.log"), "w"),
                            stderr=subprocess.STDOUT)
    wait_for(f"http://127.0.0.1:{actions_port}/health", 240, actions)
    wait_for(f"http://127.0.0.1:{rasa_port}/status", 300, rasa)
    return f"http://127.0.0.1:{rasa_port}", [actions, rasa]


def start_app(env: dict, port: int, logs: str) -> subprocess.Popen:
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "flask", "seed-demo"], cwd=ROOT, env=env, capture_output=True)
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "32",
                             "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(logs, "app.log"), "w"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-bot", action="store_true", help="start rasa and its action server from bot/.venv")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "120")))
    parser.add_argument("--residents", type=int, default=int(os.environ.get("BENCH_RESIDENTS", "50")))
    parser.add_argument("--mix", default=",".join(CONVERSATIONS),
                        help="conversations to play, comma separated (default: all)")
    args = parser.parse_args()
    MIX.clear()
    MIX.update(name for name in args.mix.split(",") if name in CONVERSATIONS)

    app_port = int(os.environ.get("BENCH_APP_PORT", "5000"))
    bot_token = os.environ.get("BENCH_BOT_TOKEN", "bench-bot-token")
    database_url = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
    rasa_url = os.environ.get("RASA_URL", "").rstrip("/")
    processes: list[subprocess.Popen] = []
    logs = tempfile.mkdtemp(prefix="linli-bench-")
    try:
        if rasa_url and answers(rasa_url + "/"):
            print(f"bot: {rasa_url} (its action server must call LINLI_API_URL=http://127.0.0.1:{app_port})")
        elif args.start_bot:
            rasa_url, started = start_bot(app_port, bot_token, logs)
            processes += started
            print(f"bot: started from bot/.venv at {rasa_url} (logs in {logs})")
        else:
            print("conversation_load: the real trained bot is required and none answers"
                  f"{' at ' + rasa_url if rasa_url else ' (RASA_URL is not set)'}.\n"
                  "  Start it (bot/scripts/env.sh, `rasa run --enable-api` and `rasa run actions`) and set RASA_URL,\n"
                  "  or run: python bench/conversation_load.py --start-bot")
            return 0
        env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "wsgi", "ENV": "development",
               "REDIS_URL": os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
               "RASA_URL": rasa_url, "WECHAT_TOKEN": WECHAT_TOKEN, "BOT_SERVICE_TOKEN": bot_token,
               "BOT_TIMEOUT": "30"}
        processes.append(start_app(env, app_port, logs))
        wait_for(f"http://127.0.0.1:{app_port}/healthz", 60)

        run_id = str(int(time.time()) % 100000)
        print(f"{args.residents} residents, {args.seconds:.0f} s per phase, think time {THINK_SECONDS} s")
        baseline = run_phase(mode="rasa", host=rasa_url, residents=args.residents, seconds=args.seconds,
                             run_id=run_id + "1")
        webhook = run_phase(mode="wechat", host=f"http://127.0.0.1:{app_port}", residents=args.residents,
                            seconds=args.seconds, run_id=run_id + "2")
        if any(r["success"] for r in webhook["records"]):
            time.sleep(float(env["BOT_TIMEOUT"]))  # late answers still being queued as 客服 replies
        with open(os.path.join(logs, "records.json"), "w") as f:
            json.dump({"baseline": baseline, "webhook": webhook}, f)
        report(baseline, webhook, database_url)
        print(f"records and logs: {logs}")
        return 0
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def report(baseline: dict, webhook: dict, database_url: str) -> None:
    records = webhook["records"]
    kefu_counts, kefu_first = outbox_by_msg_id(database_url, [r["msg_id"] for r in records])
    outcome = Counter()
    reply_latency = []
    for r in records:
        kefu = kefu_counts.get(r["msg_id"], 0)
        if r["status"] != 200:
            outcome["error"] += 1
        elif r["passive"] and kefu == 0:
            outcome["passive"] += 1
            reply_latency.append(r["latency"])
        elif r["success"] and kefu > 0:
            outcome["kefu"] += 1
            reply_latency.append(kefu_first[r["msg_id"]] - r["sent"])
        elif r["passive"] and kefu > 0:
            outcome["answered twice"] += 1
        else:
            outcome["no automatic answer (with staff, or the bot said nothing)"] += 1
    base_latency = [r["latency"] for r in baseline["records"] if r["status"] == 200]
    hook_latency = [r["latency"] for r in records if r["status"] == 200]
    print()
    print(f"{'path':<34} | {'msgs':>6} | {'p50 ms':>8} | {'p99 ms':>8} | {'msgs/s':>7} | errors")
    for name, phase, lat in (("Rasa REST channel alone", baseline, base_latency),
                             ("WeChat webhook (HTTP answer)", webhook, hook_latency)):
        errors = sum(1 for r in phase["records"] if r["status"] != 200)
        print(f"{name:<34} | {len(phase['records']):>6} | {percentile(lat, 50):>8.1f} | {percentile(lat, 99):>8.1f}"
              f" | {len(phase['records']) / phase['seconds']:>7.1f} | {errors}")
    print(f"{'webhook reply (passive or 客服)':<34} | {len(reply_latency):>6} | {percentile(reply_latency, 50):>8.1f}"
          f" | {percentile(reply_latency, 99):>8.1f} |")
    print(f"added by the app: p50 {percentile(hook_latency, 50) - percentile(base_latency, 50):.1f} ms, "
          f"p99 {percentile(hook_latency, 99) - percentile(base_latency, 99):.1f} ms")
    total = sum(outcome.values()) or 1
    print("answers per message (by MsgId): " + ", ".join(f"{k} {v} ({100 * v / total:.1f}%)"
                                                           for k, v in outcome.most_common()))
    print(f"answered twice: {outcome['answered twice']}; failed requests: {outcome['error']} "
          "(status 0 is a client-side timeout or reset)")
    print("every message answered exactly once: " + ("yes" if outcome["answered twice"] == 0
                                                      and outcome["error"] == 0 else "NO"))
    statuses = Counter(r["status"] for r in records if r["status"] != 200)
    if statuses:
        print(f"non-200 answers: {dict(statuses)}")
    print(json.dumps({"baseline_p50_ms": percentile(base_latency, 50), "baseline_p99_ms": percentile(base_latency, 99),
                      "webhook_p50_ms": percentile(hook_latency, 50), "webhook_p99_ms": percentile(hook_latency, 99),
                      "outcomes": dict(outcome)}, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
