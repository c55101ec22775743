"""Webhook overhead: what Linli's WeChat path adds on top of the bot's own answer.

Measured with wrk (apt package `wrk`) on this machine, in one run:
  baseline  POST to a stub Rasa REST channel that answers instantly (asyncio: the bot's own cost, near zero)
  webhook   POST /wechat (signed plaintext text messages, unique MsgIds) to the app under gunicorn, whose
            bot is that same stub: signature, XML, dedup, storage, routing, the bot call, the passive reply
  floor     GET /livez of the same app under the same gunicorn: a route that calls nothing, so what the server
            and Flask alone cost at that load (the part of the webhook's figure no app code can remove)
under four loads: 1 sender writing back to back (the added latency); 20 senders each pausing a random
THINK_MS between messages, about 1 s and about 0.1 s on average (20 residents chatting at once, then ten
times faster); and 20 senders back to back (saturation: the machine's throughput, where latency is
queueing for the two CPUs). Prints p50/p99 latency, messages/s and the ratios.

The app runs as in production: nginx (apt package `nginx-light`) with deploy/nginx.conf in front of gunicorn with
deploy/gunicorn.conf.py (sync workers); BENCH_DIRECT=1 runs the Procfile's way instead, gunicorn's threaded
workers with no proxy (`make run`), for comparison.

Environment: DATABASE_URL (PostgreSQL; migrated here), TEST_REDIS_URL or REDIS_URL, BENCH_SECONDS (20);
for the experiments in docs/channels.md: BENCH_LOADS, a comma-separated choice of one, paced1000, paced100 and
saturation (the four loads above, in that order; all by default), e.g. BENCH_LOADS=saturation,
BENCH_WORKERS (gunicorn's workers: deploy/gunicorn.conf.py's count, or 4 with BENCH_DIRECT) and
BENCH_GUNICORN_ARGS (extra gunicorn options, e.g. "--keep-alive 0").
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from urllib.request import urlopen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.servers import free_port, start_nginx  # noqa: E402 (the same nginx setup as the production-setup tests)

TOKEN = "bench-wechat-token"
SENDERS = 2000  # distinct openids per run: a realistic mix of known residents, none over the flood limit
# The paced loads: 20 residents writing about a message a second (faster than anyone types), then ten a second.
THINK_MS = (1000, 100)
WARMUP_SECONDS = 12  # long enough for every sender to have written once
DIRECT = bool(os.environ.get("BENCH_DIRECT"))
WORKERS = os.environ.get("BENCH_WORKERS", "4" if DIRECT else "")  # empty: deploy/gunicorn.conf.py decides

# Every message a new MsgId: wrk runs one Lua state per thread, so each thread gets its own number (an
# unseeded math.random would give every thread the same "random" prefix, and the threads' messages would
# then be WeChat retries of each other, answered from the first delivery instead of each taking a turn).
THREAD_IDS_LUA = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
"""

# WeChat signs each delivery afresh: a nonce of its own, the current timestamp, and
# signature = sha1 of the token, timestamp and nonce sorted and concatenated (app/channels/wechat_envelope.py's
# signature_of, wechatpy's WeChatSigner). Plain mode's signature covers no body, so the app refuses a second
# body under a signature it has already seen: one signed query reused for every message would measure 403s.
# wrk's LuaJIT has the `bit` library but no SHA1, hence this small one (checked against hashlib).
SHA1_LUA = r"""
local band, bor, bxor, bnot, lshift, rshift, rol, tobit, tohex =
  bit.band, bit.bor, bit.bxor, bit.bnot, bit.lshift, bit.rshift, bit.rol, bit.tobit, bit.tohex
local sha1_w = {}
function sha1_hex(msg)
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local bits = #msg * 8  -- messages here are short: the length's upper 32 bits are zero
  msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. "\0\0\0\0" ..
    string.char(band(rshift(bits, 24), 255), band(rshift(bits, 16), 255), band(rshift(bits, 8), 255), band(bits, 255))
  local w = sha1_w
  for block = 1, #msg, 64 do
    for j = 0, 15 do
      local b1, b2, b3, b4 = string.byte(msg, block + 4 * j, block + 4 * j + 3)
      w[j] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    end
    for j = 16, 79 do
      w[j] = rol(bxor(w[j - 3], w[j - 8], w[j - 14], w[j - 16]), 1)
    end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for j = 0, 79 do
      local f, k
      if j < 20 then
        f, k = bor(band(b, c), band(bnot(b), d)), 0x5A827999
      elseif j < 40 then
        f, k = bxor(b, c, d), 0x6ED9EBA1
      elseif j < 60 then
        f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8F1BBCDC
      else
        f, k = bxor(b, c, d), 0xCA62C1D6
      end
      a, b, c, d, e = tobit(rol(a, 5) + f + e + k + w[j]), a, rol(b, 30), c, d
    end
    h0, h1, h2, h3, h4 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d), tobit(h4 + e)
  end
  return tohex(h0) .. tohex(h1) .. tohex(h2) .. tohex(h3) .. tohex(h4)
end

-- The query WeChat would send with one delivery: its own nonce, the current time, their signature.
function signed_path(path, token, timestamp, nonce)
  local parts = {token, timestamp, nonce}
  table.sort(parts)  -- byte order, as Python sorts the bytes
  return path .. "?signature=" .. sha1_hex(table.concat(parts)) .. "&timestamp=" .. timestamp .. "&nonce=" .. nonce
end
"""

WECHAT_LUA = THREAD_IDS_LUA + SHA1_LUA + r"""
function init(args)
  counter = 0
  prefix = tostring(os.time()) .. string.format("%02d", tid)
end
function request()
  counter = counter + 1
  local now = tostring(os.time())
  local id = prefix .. tostring(counter)  -- the MsgId, and the nonce: unique per message, as WeChat's are
  local sender = "oBench" .. tostring((counter * 7 + tid) % %SENDERS%)
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[" .. sender ..
    "]]></FromUserName><CreateTime>" .. now .. "</CreateTime><MsgType><![CDATA[text]]></MsgType>" ..
    "<Content><![CDATA[社保卡怎么补办]]></Content><MsgId>" .. id .. "</MsgId></xml>"
  return wrk.format("POST", signed_path("/wechat", "%TOKEN%", now, id), {["Content-Type"] = "text/xml"}, body)
end
"""

# A sender that pauses between messages: wrk waits delay() ms before each request on a connection. The
# pause is random (uniform, %THINK_MS% on average) so the senders write independently, as people do; a fixed
# pause would keep all 20 in lock-step, every message of a round arriving in the same millisecond.
THINK_LUA = r"""
local seeded = false
function delay()
  if not seeded then
    math.randomseed(os.time() * 100 + tid)
    seeded = true
  end
  return math.random(0, 2 * %THINK_MS%)
end
"""

LIVEZ_LUA = THREAD_IDS_LUA  # wrk's default request, a GET; the thread ids feed THINK_LUA's seed

RASA_LUA = THREAD_IDS_LUA + r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sender": "bench", "message": "社保卡怎么补办"}'
"""


class InstantRasa(asyncio.Protocol):
    """Rasa's REST channel answering at once: HTTP/1.1 with keep-alive, as Rasa's server does.

    asyncio rather than http.server, whose thread and parsing per request cost more CPU than the app's
    own bot call: on these two cores the stub's CPU would be taken from the app under measurement.
    """

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ength:" in head else 0
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            sender = json.loads(body).get("sender") if body else None
            answer = json.dumps([{"recipient_id": sender, "text": "请带身份证到社区服务中心补办。"}]).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(answer), answer))


def serve_rasa(port: int) -> None:
    async def serve():
        server = await asyncio.get_running_loop().create_server(InstantRasa, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(serve())


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urlopen(url, timeout=1)
            return
        except Exception as exc:  # noqa: BLE001 (any answer, even 4xx, means it is up)
            if getattr(exc, "code", None):
                return
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, script: str, connections: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(["wrk", "-t", str(min(connections, 4)), "-c", str(connections), "-d", f"{seconds}s",
                              "--latency", "-s", f.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    return {"p50": _ms(out, "50%"), "p99": _ms(out, "99%"),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "errors": _errors(out)}


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"^\s*{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _errors(out: str) -> int:
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)


def gunicorn_options() -> list[str]:
    if DIRECT:
        return ["-w", WORKERS, "-k", "gthread", "--threads", "8"]
    return ["-c", os.path.join(ROOT, "deploy", "gunicorn.conf.py"), *(["-w", WORKERS] if WORKERS else [])]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-rasa":
        serve_rasa(int(sys.argv[2]))
        return 0
    if shutil.which("wrk") is None or (not DIRECT and shutil.which("nginx") is None):
        print("wrk and nginx are needed: apt-get install -y wrk nginx-light", file=sys.stderr)
        return 1
    seconds = int(os.environ.get("BENCH_SECONDS", "20"))
    env = {**os.environ, "DATABASE_URL": os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test"),
           "REDIS_URL": os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
           "WECHAT_TOKEN": TOKEN, "ENV": "development", "FLASK_APP": "wsgi"}
    rasa_port, app_port = free_port(), free_port()
    env["RASA_URL"] = f"http://127.0.0.1:{rasa_port}"
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve-rasa", str(rasa_port)], cwd=ROOT),
        subprocess.Popen([sys.executable, "-m", "gunicorn", *gunicorn_options(), "-b", f"127.0.0.1:{app_port}",
                          "--log-level", "warning", *shlex.split(os.environ.get("BENCH_GUNICORN_ARGS", "")),
                          "wsgi:app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL),
    ]
    front_port = app_port
    if not DIRECT:
        nginx, front_port = start_nginx(app_port)
        procs.append(nginx)
    try:
        wait_for(f"http://127.0.0.1:{rasa_port}/")
        wait_for(f"http://127.0.0.1:{front_port}/healthz")
        rasa_url = f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook"
        app_url = f"http://127.0.0.1:{front_port}"  # the Lua script signs each request's /wechat?... itself
        wechat_lua = WECHAT_LUA.replace("%SENDERS%", str(SENDERS)).replace("%TOKEN%", TOKEN)
        # Warm-up: every sender writes once, so the measured messages come from known residents (a new
        # resident's first message also creates their records), and the pools and imports are warm.
        wrk(app_url, wechat_lua, 8, WARMUP_SECONDS)
        rows = []
        loads = {"one": ("1 sender, back to back", 1, "")}
        loads |= {f"paced{ms}": (f"20 senders, ~{ms / 1000:g} s apart", 20, THINK_LUA.replace("%THINK_MS%", str(ms)))
                  for ms in THINK_MS}
        loads["saturation"] = ("20 senders, back to back", 20, "")
        chosen = os.environ.get("BENCH_LOADS", ",".join(loads)).split(",")
        loads = [loads[name] for name in chosen]
        for label, connections, extra in loads:
            base = wrk(rasa_url, RASA_LUA + extra, connections, seconds)
            floor = wrk(f"http://127.0.0.1:{front_port}/livez", LIVEZ_LUA + extra, connections, seconds)
            hook = wrk(app_url, wechat_lua + extra, connections, seconds)
            rows.append((label, base, floor, hook))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    server = ("gunicorn threaded workers, no proxy (BENCH_DIRECT)" if DIRECT
              else "nginx (deploy/nginx.conf) in front of gunicorn (deploy/gunicorn.conf.py)")
    print(f"webhook overhead, {seconds}s per measurement, wrk, {server} {' '.join(gunicorn_options())} "
          f"{os.environ.get('BENCH_GUNICORN_ARGS', '')}".rstrip())
    print(f"{'load':<30} | {'path':<22} | {'p50 ms':>7} | {'p99 ms':>7} | {'msgs/s':>8} | errors")
    for label, base, floor, hook in rows:
        for name, r in (("stub bot alone", base), ("app floor (GET /livez)", floor), ("WeChat webhook", hook)):
            print(f"{label:<30} | {name:<22} | {r['p50']:>7.2f} | {r['p99']:>7.2f} | {r['rps']:>8.0f} | {r['errors']}")
        print(f"{label:<30} | {'added by the webhook':<22} | {hook['p50'] - base['p50']:>7.2f} | "
              f"{hook['p99'] - base['p99']:>7.2f} | ratio of throughput {hook['rps'] / base['rps']:.2f}")
        print(f"{label:<30} | {'webhook / app floor':<22} | {hook['p50'] / floor['p50']:>7.2f} | "
              f"{hook['p99'] / floor['p99']:>7.2f} | ratio of throughput {hook['rps'] / floor['rps']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
