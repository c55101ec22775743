"""Helpers for `make run` on a laptop: a local Redis when none answers (Linli never runs without Redis)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import RedisError


def redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def ensure_local_redis(url: str, data_dir: str) -> str:
    """Start a redis-server for `url` when nothing answers; install Debian's package if it is missing."""
    if redis_answers(url):
        return "already running"
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"Redis at {url} does not answer, and it is not local, so it cannot be started here")
    binary = shutil.which("redis-server") or _install_redis_server()
    os.makedirs(data_dir, exist_ok=True)
    subprocess.run(
        [binary, "--port", str(parsed.port or 6379), "--bind", "127.0.0.1", "--daemonize", "yes",
         "--dir", data_dir, "--logfile", os.path.join(data_dir, "redis.log"), "--appendonly", "yes"],
        check=True,
    )
    for _ in range(50):
        if redis_answers(url):
            return f"started {binary}"
        time.sleep(0.1)
    raise RuntimeError("redis-server was started but does not answer; see instance/redis/redis.log")


def _install_redis_server() -> str:
    if os.geteuid() != 0:
        raise RuntimeError("no redis-server found: install it (apt-get install redis-server) or set REDIS_URL")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("redis-server") or "/usr/bin/redis-server"
