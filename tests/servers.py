"""The app served as it runs for real: gunicorn in the Procfile's setup (threaded workers, `make run`) or in
production's (deploy/gunicorn.conf.py, sync workers), and nginx with deploy/nginx.conf in front. Used by the
tests that need a real server process and by bench/webhook_overhead.py."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from urllib.request import urlopen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUNICORN_SETUPS = {"procfile": ["-k", "gthread", "--threads", "4"],
                   "production": ["-c", os.path.join(ROOT, "deploy", "gunicorn.conf.py")]}


def free_port() -> int:
    """A loopback port nobody listens on (until the caller does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(setup: str, env: dict, *, workers: int = 1) -> tuple[subprocess.Popen, int]:
    """wsgi:app under gunicorn on a free loopback port, in its own process group (kill it with os.killpg)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *GUNICORN_SETUPS[setup], "-w", str(workers),
                             "-b", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, port


def start_nginx(app_port: int, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """deploy/nginx.conf's server block in front of `app_port`, on `port` (a free one by default) of loopback, in a
    scratch prefix."""
    port, prefix = port or free_port(), tempfile.mkdtemp(prefix="linli-nginx-")
    with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
        site = (f.read().replace("127.0.0.1:5000", f"127.0.0.1:{app_port}")
                .replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{port}"))
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
                "events { worker_connections 1024; }\nhttp {\n  access_log off;\n"
                + "".join(f"  {kind}_temp_path {prefix}/{kind};\n"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
                + site + "\n}\n")
    return subprocess.Popen(["nginx", "-p", prefix, "-c", conf], stderr=subprocess.DEVNULL), port


def healthy(url: str) -> bool:
    """Whether `url` answers 200 (behind nginx, a 502 means the app is not up yet)."""
    try:
        return urlopen(url, timeout=1).status == 200
    except OSError:
        return False
