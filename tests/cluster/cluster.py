"""Linli on several hosts (network namespaces, tests/cluster/hosts.py), started from deploy/'s files.

    lb 10.77.0.10       nginx with deploy/cluster/nginx-balancer.conf: web on :80, the bot on :5005
    web1, web2 .11 .12  gunicorn -c deploy/gunicorn.conf.py (sync workers)
    rasa1, rasa2 .21 .22  rasa run (Redis tracker and lock stores) + the action server
    worker1, worker2 .31 .32  flask worker + flask ticker
    redis .40           redis-server, empty, no persistence
    db .50              the machine's PostgreSQL (database test_cluster), reached through a TCP relay on this host
    root ns .1          the WeChat and Twilio stubs, and whoever drives traffic

Everything is removed by `stop()`, and a run killed before it is cleaned up by the next one's start.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.request import urlopen

import psycopg
import redis

from tests.cluster.hosts import GATEWAY, Host, Network
from tests.stubs.twilio_stub import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM, TwilioStub
from tests.stubs.wechat_stub import DEFAULT_APP_ID, DEFAULT_SECRET, WeChatStub

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOT = os.path.join(ROOT, "bot")
ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
DATABASE = "test_cluster"
PG_SOCKET = os.environ.get("CLUSTER_PG_SOCKET", "/var/run/postgresql/.s.PGSQL.5432")
WECHAT_TOKEN = "cluster-wechat-token"
SERVICE_TOKEN = "cluster-bot-service-token"
LAYOUT = {"lb": 10, "web1": 11, "web2": 12, "rasa1": 21, "rasa2": 22, "worker1": 31, "worker2": 32,
          "redis": 40, "db": 50}


def database_url(host: str) -> str:
    """test_cluster on the machine's PostgreSQL, as reached from `host` ("127.0.0.1" from the root namespace)."""
    base, _, _ = ADMIN_DATABASE_URL.rpartition("/")
    base = base.replace("127.0.0.1", host).replace("localhost", host)
    return f"{base}/{DATABASE}"


def wait_for(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None, log: str = ""):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; see {log}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return urlopen(url, timeout=2).status == 200
    except OSError:
        return False


class Cluster:
    def __init__(self, *, model: str | None = None, web_concurrency: int = 2) -> None:
        self.workdir = tempfile.mkdtemp(prefix="linli-cluster-")
        self.model_source = model or os.environ.get("CLUSTER_RASA_MODEL", os.path.join(BOT, "models", "linli.tar.gz"))
        self.web_concurrency = web_concurrency
        self.net: Network | None = None
        self.wechat: WeChatStub | None = None
        self.twilio: TwilioStub | None = None

    # --- addresses ---------------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    @property
    def base_url(self) -> str:
        return f"http://{self.host('lb').address}"

    @property
    def bot_url(self) -> str:
        return f"http://{self.host('lb').address}:5005"

    def log(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    def env(self, **extra) -> dict:
        """What every Linli process gets: the shared database, Redis, the bot behind the balancer, the stubs."""
        return {**os.environ, "ENV": "test", "FLASK_APP": "wsgi", "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": database_url(self.host("db").address),
                "REDIS_URL": f"redis://{self.host('redis').address}:6379/0",
                "RASA_URL": self.bot_url, "PUBLIC_BASE_URL": self.base_url,
                "SECRET_KEY": "cluster-secret-key-of-32-characters-at-least",
                "BOT_SERVICE_TOKEN": SERVICE_TOKEN, "WECHAT_TOKEN": WECHAT_TOKEN,
                "WECHAT_APP_ID": DEFAULT_APP_ID, "WECHAT_SECRET": DEFAULT_SECRET,
                "WECHAT_API_BASE": f"{self.wechat.base_url}/cgi-bin/",
                "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": self.twilio.base_url,
                "TRUSTED_PROXY_HOPS": "1", "SENDER_RATE_LIMIT": "1000/minute", **extra}

    # --- start and stop ----------------------------------------------------------------------------------
    def start(self, *, rasa: bool = True) -> "Cluster":
        try:
            self._start(rasa=rasa)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, *, rasa: bool) -> None:
        self.net = Network()
        for name, octet in LAYOUT.items():
            self.net.add(name, octet)
        self.wechat = WeChatStub().start(host=GATEWAY)
        self.twilio = TwilioStub().start(host=GATEWAY)
        self._start_database()
        self._start_redis()
        if rasa:
            model = os.path.join(self.workdir, "linli.tar.gz")
            shutil.copyfile(self.model_source, model)  # bot/models may be retrained under a long run
            for name in ("rasa1", "rasa2"):
                self.start_rasa(name, model)
        for name in ("web1", "web2"):
            self.start_web(name)
        self._start_balancer()
        for name in ("worker1", "worker2"):
            self.start_worker(name)
        wait_for(lambda: answers(self.base_url + "/livez"), timeout=60, what="the app through the balancer",
                 log=self.log("lb"))
        if rasa:
            for name in ("rasa1", "rasa2"):
                url = f"http://{self.host(name).address}:5005/status"
                wait_for(lambda url=url: answers(url), timeout=600, what=f"{name} loading its model",
                         proc=self.host(name).procs[0], log=self.log(name))

    def _start_database(self) -> None:
        with psycopg.connect(ADMIN_DATABASE_URL.replace("+psycopg", ""), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        with psycopg.connect(database_url("127.0.0.1").replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")  # a fresh record for every run
            conn.execute("CREATE SCHEMA public")
        db = self.host("db")
        # A TCP relay on the db host to the machine's PostgreSQL socket: the other hosts reach it over the network.
        db.spawn(["socat", f"TCP-LISTEN:5432,bind={db.address},fork,reuseaddr", f"UNIX-CONNECT:{PG_SOCKET}"],
                 env=os.environ.copy(), cwd=self.workdir, log=self.log("db"))
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, check=True,
                       env={**os.environ, "DATABASE_URL": database_url("127.0.0.1"), "ENV": "test"},
                       capture_output=True)

    def _start_redis(self) -> None:
        host = self.host("redis")
        self.redis_proc = host.spawn(["redis-server", "--bind", host.address, "--port", "6379", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no", "--dir", self.workdir],
                                     env=os.environ.copy(), cwd=self.workdir, log=self.log("redis"))
        wait_for(self._redis_up, timeout=20, what="redis", log=self.log("redis"))

    def _redis_up(self) -> bool:
        try:
            return self.redis().ping()
        except redis.RedisError:
            return False

    def redis(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host("redis").address, port=6379, db=db, socket_timeout=5)

    def restart_redis_empty(self) -> None:
        """Redis stopped hard and started again with nothing in it (no persistence: it is a cache and a queue)."""
        host = self.host("redis")
        self.redis_proc.kill()
        self.redis_proc.wait(10)
        host.procs.remove(self.redis_proc)
        self._start_redis()

    def start_web(self, name: str) -> None:
        self.host(name).spawn([sys.executable, "-m", "gunicorn", "-c", os.path.join(ROOT, "deploy", "gunicorn.conf.py"),
                               "wsgi:app"], cwd=ROOT, log=self.log(name),
                              env=self.env(WEB_BIND="0.0.0.0:5000", WEB_CONCURRENCY=str(self.web_concurrency)))

    def start_worker(self, name: str) -> None:
        host = self.host(name)
        for command in ("worker", "ticker"):
            host.spawn([sys.executable, "-m", "flask", "--app", "wsgi", command], cwd=ROOT, env=self.env(),
                       log=self.log(name))

    def start_rasa(self, name: str, model: str) -> None:
        host = self.host(name)
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
               "ACTION_SERVER_URL": "http://127.0.0.1:5055/webhook", "BOT_REDIS_HOST": self.host("redis").address,
               "BOT_REDIS_PORT": "6379", "BOT_REDIS_PASSWORD": "", "BOT_TRACKER_REDIS_DB": "2",
               "BOT_LOCK_REDIS_DB": "3", "LINLI_API_URL": self.base_url, "BOT_SERVICE_TOKEN": SERVICE_TOKEN}
        rasa = os.path.join(BOT, ".venv", "bin", "rasa")
        host.spawn([rasa, "run", "--enable-api", "-i", "0.0.0.0", "--port", "5005", "--model", model,
                    "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"],
                   env=env, cwd=BOT, log=self.log(name))
        host.spawn([rasa, "run", "actions", "--actions", "actions", "--port", "5055"], env=env, cwd=BOT,
                   log=self.log(name + "-actions"))

    def _start_balancer(self, bots: tuple[str, ...] = ("rasa1", "rasa2")) -> None:
        prefix = os.path.join(self.workdir, "nginx")
        os.makedirs(prefix, exist_ok=True)
        with open(os.path.join(ROOT, "deploy", "cluster", "nginx-balancer.conf")) as f:
            site = f.read()
        for name in ("web1", "web2", "rasa1", "rasa2"):
            site = site.replace(f"{name}.linli.internal", self.host(name).address)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
                    "events { worker_connections 4096; }\nhttp {\n  access_log off;\n"
                    + "".join(f"  {kind}_temp_path {prefix}/{kind};\n"
                              for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
                    + site + "\n}\n")
        self.host("lb").spawn(["nginx", "-p", prefix, "-c", conf], env=os.environ.copy(), cwd=self.workdir,
                              log=self.log("lb"))

    def stop(self) -> None:
        if self.net is not None:
            self.net.close()
            self.net = None
        for stub in (self.wechat, self.twilio):
            if stub is not None:
                stub.stop()
        self.wechat = self.twilio = None

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, kind, *exc) -> None:
        self.stop()
        if kind is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"\ncluster logs kept in {self.workdir}")
