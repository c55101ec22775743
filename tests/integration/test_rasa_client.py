"""The Rasa REST client against a tiny local HTTP server that answers like Rasa's REST channel."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.rasa import BotUnavailable, RasaRestClient
from tests.conftest import free_port


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is what the slow-bot test is about


class FakeRasa:
    """Answers `/webhooks/rest/webhook` the way Rasa does, or the way it is told to misbehave.

    Plain http.server with HTTP/1.1 keep-alive (werkzeug's server closes every connection), so the
    test can see whether the client reuses its connections.
    """

    def __init__(self, *, idle_timeout: float | None = None) -> None:
        self.received: list[dict] = []
        self.client_ports: set[int] = set()
        self.mode = "echo"  # echo, slow, stall, error, not_a_list, not_json
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout  # how long a kept-alive connection may idle before the server closes it

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer(200, "text/plain", "Hello from Rasa: 3.6.21") if self.path == "/" else \
                    self._answer(404, "text/plain", "not found")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.received.append(body)
                fake.client_ports.add(self.client_address[1])
                if fake.mode == "slow":
                    fake._release.wait(5)
                if fake.mode == "stall":  # the headers and half the answer, then nothing
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "40")
                    self.end_headers()
                    self.wfile.write(b'[{"recipient_id": "x", ')
                    fake._release.wait(5)
                    self.close_connection = True
                    return
                if fake.mode == "error":
                    return self._json(500, {"error": "boom"})
                if fake.mode == "not_a_list":
                    return self._json(200, {"message": "model not ready"})
                if fake.mode == "not_json":
                    return self._answer(200, "text/html", "<html>proxy error</html>")
                sender = body["sender"]
                self._json(200, [{"recipient_id": sender, "text": f"收到：{body['message']}"},
                                 {"recipient_id": sender, "buttons": [{"title": "预约", "payload": "/book"}]}])

            def _json(self, status, payload):
                self._answer(status, "application/json", json.dumps(payload, ensure_ascii=False))

            def _answer(self, status, content_type, text):
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def release(self) -> None:
        """Let a slow answer go."""
        self._release.set()

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake_rasa():
    fake = FakeRasa()
    fake.start()
    yield fake
    fake.stop()


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_send_posts_sender_and_message_and_returns_the_bots_messages(fake_rasa):
    answer = RasaRestClient(fake_rasa.base_url + "/").send("conv-42", "我想挂号", timeout=2)

    assert fake_rasa.received == [{"sender": "conv-42", "message": "我想挂号"}]
    assert answer == [{"recipient_id": "conv-42", "text": "收到：我想挂号"},
                      {"recipient_id": "conv-42", "buttons": [{"title": "预约", "payload": "/book"}]}]


def test_consecutive_messages_reuse_one_pooled_connection(fake_rasa):
    client = RasaRestClient(fake_rasa.base_url)
    for i in range(5):
        client.send("conv-1", f"message {i}", timeout=2)

    assert len(fake_rasa.received) == 5
    assert len(fake_rasa.client_ports) == 1


def test_a_quick_answer_is_ready_within_the_callers_budget(fake_rasa):
    exchange = RasaRestClient(fake_rasa.base_url).start("conv-7", "你好", timeout=2)

    assert exchange.ready_within(2) is True
    assert exchange.result()[0] == {"recipient_id": "conv-7", "text": "收到：你好"}


def test_an_answer_slower_than_the_callers_budget_is_still_read_when_it_comes(fake_rasa):
    fake_rasa.mode = "slow"
    client = RasaRestClient(fake_rasa.base_url)
    exchange = client.start("conv-8", "我要挂号", timeout=3)

    started = time.monotonic()
    assert exchange.ready_within(0.2) is False  # the webhook's budget is over: it answers "success"
    assert 0.15 < time.monotonic() - started < 1.0
    fake_rasa.release()
    assert exchange.result()[0] == {"recipient_id": "conv-8", "text": "收到：我要挂号"}
    fake_rasa.mode = "echo"
    assert client.send("conv-8", "再问一次", timeout=2)[0]["text"] == "收到：再问一次"
    assert len(fake_rasa.client_ports) == 1  # the connection went back to the pool after the late answer


def test_an_answer_that_stalls_halfway_fails_within_the_callers_budget(fake_rasa):
    fake_rasa.mode = "stall"
    exchange = RasaRestClient(fake_rasa.base_url).start("conv-10", "你好", timeout=5)
    assert exchange.ready_within(2) is True  # it began to arrive

    started = time.monotonic()
    with pytest.raises(BotUnavailable, match="Timeout"):
        exchange.result(within=0.3)
    assert time.monotonic() - started < 1.5


def test_a_kept_alive_connection_the_bot_closed_while_idle_is_not_reused():
    fake = FakeRasa(idle_timeout=0.2)  # Rasa's server, too, closes connections left idle
    fake.start()
    try:
        client = RasaRestClient(fake.base_url)
        client.send("conv-9", "第一条", timeout=2)
        time.sleep(0.6)
        assert client.send("conv-9", "第二条", timeout=2)[0]["text"] == "收到：第二条"
        assert len(fake.client_ports) == 2
    finally:
        fake.stop()


def test_slow_bot_raises_bot_unavailable_at_the_timeout(fake_rasa):
    fake_rasa.mode = "slow"

    started = time.monotonic()
    with pytest.raises(BotUnavailable, match="Timeout"):
        RasaRestClient(fake_rasa.base_url).send("conv-1", "hi", timeout=0.5)

    assert time.monotonic() - started < 1.5


def test_refused_connection_raises_bot_unavailable():
    with pytest.raises(BotUnavailable, match="ConnectionError"):
        RasaRestClient(closed_port_url()).send("conv-1", "hi", timeout=1)


@pytest.mark.parametrize("mode", ["error", "not_a_list", "not_json"])
def test_failing_or_unexpected_answers_raise_bot_unavailable(fake_rasa, mode):
    fake_rasa.mode = mode

    with pytest.raises(BotUnavailable):
        RasaRestClient(fake_rasa.base_url).send("conv-1", "hi", timeout=2)


def test_status_is_true_when_rasa_answers_and_false_when_it_is_down(fake_rasa):
    assert RasaRestClient(fake_rasa.base_url).status() is True
    assert RasaRestClient(closed_port_url()).status() is False
