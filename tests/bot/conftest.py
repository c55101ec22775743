"""A real trained Rasa and its action server, wired to the app served on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import TEST_SETTINGS, make_test_app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOT_DIR = os.path.join(ROOT, "bot")
RASA = os.path.join(BOT_DIR, ".venv", "bin", "rasa")
MODEL = os.path.join(BOT_DIR, "models", "linli.tar.gz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log_path: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n" + open(log_path, encoding="utf-8").read()[-3000:])
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


@pytest.fixture(scope="session")
def bot_stack(app, tmp_path_factory):
    """The app on a real port, `rasa run actions` calling it, and `rasa run` with the trained model."""
    if not (os.path.exists(RASA) and os.path.exists(MODEL)):
        pytest.fail("the bot is not installed and trained: run `make bot-model` (make test does)")
    logs = tmp_path_factory.mktemp("bot-logs")
    app_port, actions_port, rasa_port = free_port(), free_port(), free_port()
    web_app = make_test_app(RASA_URL=f"http://127.0.0.1:{rasa_port}", WECHAT_REPLY_BUDGET=30.0, BOT_TIMEOUT=30.0)
    server = make_server("127.0.0.1", app_port, web_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "LINLI_API_URL": f"http://127.0.0.1:{app_port}", "BOT_SERVICE_TOKEN": TEST_SETTINGS["BOT_SERVICE_TOKEN"],
           "ACTION_SERVER_URL": f"http://127.0.0.1:{actions_port}/webhook",
           "BOT_REDIS_HOST": "127.0.0.1", "BOT_REDIS_PORT": "6379", "BOT_REDIS_PASSWORD": "",
           "BOT_TRACKER_REDIS_DB": "6", "BOT_LOCK_REDIS_DB": "7"}
    processes = []
    try:
        actions_log = str(logs / "actions.log")
        actions = subprocess.Popen([RASA, "run", "actions", "--port", str(actions_port), "--actions", "actions"],
                                   cwd=BOT_DIR, env=env, stdout=open(actions_log, "w"), stderr=subprocess.STDOUT)
        processes.append(actions)
        rasa_log = str(logs / "rasa.log")
        rasa = subprocess.Popen([RASA, "run", "--enable-api", "--port", str(rasa_port), "--model", MODEL,
                                 "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"],
                                cwd=BOT_DIR, env=env, stdout=open(rasa_log, "w"), stderr=subprocess.STDOUT)
        processes.append(rasa)
        wait_until_up(f"http://127.0.0.1:{actions_port}/health", actions, actions_log)
        wait_until_up(f"http://127.0.0.1:{rasa_port}/status", rasa, rasa_log)
        yield {"app": web_app, "app_url": f"http://127.0.0.1:{app_port}", "rasa_url": f"http://127.0.0.1:{rasa_port}"}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        server.shutdown()
