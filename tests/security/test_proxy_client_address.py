"""Per-address limits see the real client behind the shipped nginx, and a client cannot choose its own address.

The attack this closes: behind deploy/nginx.conf every request reached the app from 127.0.0.1, so the per-address
budgets (MOBILE_CODES_PER_IP_HOUR, the console's 20 logins a minute) were one budget for everybody: one client
asking for 20 codes, or failing 20 logins, locked every resident or every member of staff out. The app now trusts
exactly TRUSTED_PROXY_HOPS proxies (deploy/gunicorn.conf.py sets 1), and nginx overwrites X-Forwarded-For with
the address it sees, so a forged header neither frees a client from its budget nor spends someone else's.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal

import pytest

from tests.conftest import make_test_app, server_env
from tests.helpers.mobile import send_code
from tests.reliability.support import wait_until
from tests.servers import free_port, healthy, start_gunicorn, start_nginx

CLIENT_A, CLIENT_B = "127.0.0.1", "127.0.0.2"
PER_ADDRESS = 2


@pytest.fixture
def front(app, committed):
    """nginx with deploy/nginx.conf in front of one production gunicorn worker; (host, port) of nginx."""
    if shutil.which("nginx") is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: `make test` installs it (apt package nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light; `make test` installs it)")
    nginx_port = free_port()
    # Only the limit is lowered here: whether the proxy is trusted is deploy/'s own setting.
    env = server_env(app, MOBILE_CODES_PER_IP_HOUR=str(PER_ADDRESS),
                     MOBILE_CODE_RESEND_SECONDS="0")
    env.pop("TRUSTED_PROXY_HOPS", None)
    web, app_port = start_gunicorn("production", env, workers=1)
    nginx, _ = start_nginx(app_port, nginx_port)
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{nginx_port}/livez"), timeout=30,
                   what="the app answering through nginx")
        yield "127.0.0.1", nginx_port
    finally:
        nginx.terminate()
        os.killpg(web.pid, signal.SIGTERM)
        nginx.wait(10)
        web.wait(30)


def ask_code(front, source: str, phone: str, headers: dict | None = None) -> int:
    """POST /api/v1/auth/sms-code to nginx from the loopback address `source`; the status."""
    connection = http.client.HTTPConnection(*front, timeout=10, source_address=(source, 0))
    try:
        connection.request("POST", "/api/v1/auth/sms-code", body=json.dumps({"phone": phone}),
                           headers={"Content-Type": "application/json", **(headers or {})})
        return connection.getresponse().status
    finally:
        connection.close()


def test_one_client_spending_its_budget_through_nginx_leaves_another_clients_untouched(front):
    spent = [ask_code(front, CLIENT_A, f"1370000001{n}") for n in range(PER_ADDRESS + 1)]
    assert spent == [202] * PER_ADDRESS + [429]
    assert ask_code(front, CLIENT_B, "13700000020") == 202


def test_a_forged_x_forwarded_for_through_nginx_does_not_change_the_address_the_app_sees(front):
    forged = {"X-Forwarded-For": CLIENT_B}
    spent = [ask_code(front, CLIENT_A, f"1370000003{n}", forged) for n in range(PER_ADDRESS + 1)]
    assert spent == [202] * PER_ADDRESS + [429]  # still limited as A
    assert ask_code(front, CLIENT_B, "13700000040") == 202  # and B's budget is untouched


def test_without_a_trusted_proxy_a_clients_x_forwarded_for_is_ignored(session):
    app = make_test_app(TRUSTED_PROXY_HOPS=0, MOBILE_CODES_PER_IP_HOUR=1)
    client = app.test_client()
    assert send_code(client, "13700000050", ip="203.0.113.5").status_code == 202
    forged = client.post("/api/v1/auth/sms-code", json={"phone": "13700000051"},
                         headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert forged.status_code == 429


def test_one_trusted_proxy_hop_gives_the_address_that_proxy_saw(session):
    app = make_test_app(TRUSTED_PROXY_HOPS=1, MOBILE_CODES_PER_IP_HOUR=1)
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    assert client.post("/api/v1/auth/sms-code", json={"phone": "13700000060"}, environ_base=proxy,
                       headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 202
    # A second client behind the same proxy has a budget of its own; only the proxy's own hop counts, so what a
    # client wrote to the left of it is not its address.
    assert client.post("/api/v1/auth/sms-code", json={"phone": "13700000061"}, environ_base=proxy,
                       headers={"X-Forwarded-For": "203.0.113.5, 203.0.113.6"}).status_code == 202
    assert client.post("/api/v1/auth/sms-code", json={"phone": "13700000062"}, environ_base=proxy,
                       headers={"X-Forwarded-For": "203.0.113.6"}).status_code == 429
