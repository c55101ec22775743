"""The bot: Rasa's REST channel behind a small interface, and a scripted fake for tests."""
from __future__ import annotations

import http.client
import json
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any, Callable, Protocol, Union
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 4.0
STATUS_TIMEOUT = 2.0


class BotUnavailable(Exception):
    """The bot gave no usable answer: down, too slow, failing, or answering something that is not a list."""


class Exchange(Protocol):
    """One turn under way at the bot: asked already, its answer read by whichever thread is still waiting."""

    def ready_within(self, seconds: float) -> bool:
        """True once the answer has begun to arrive (or the turn has failed): result() then need not wait."""

    def result(self, within: float | None = None) -> list[dict]:
        """The bot's messages for the turn; raises BotUnavailable. Waits up to the client's timeout for each
        part of the answer, or, given `within`, for no more than that: an answer that began to arrive and then
        stalled must not keep a webhook past its budget."""


class BotClient(Protocol):
    def start(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> Exchange: ...

    def send(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]: ...

    def parse(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str | None: ...

    def status(self) -> bool: ...


class RasaRestClient:
    """Talks to a Rasa server's REST channel over kept-alive HTTP connections.

    The standard library's http.client, because a webhook asks the bot, then waits for the answer only up
    to its own budget, and the answer must be read by whichever thread is still there: the webhook's own when
    the bot is quick (no hand-over to another thread per message), a bot thread when it is not (the answer is
    kept). urllib3 and requests send and read in one call; they also cost two to three times the CPU per call.
    No retries: a repeated POST would be a second turn for the bot, and a failed turn is handed to staff.
    """

    def __init__(self, base_url: str, *, pool_size: int = 20):
        url = urlsplit(base_url)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "127.0.0.1", url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def start(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> Exchange:
        return self._ask("POST", "/webhooks/rest/webhook", {"sender": sender, "message": text}, timeout,
                         _messages_of)

    def send(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
        """The bot's messages for one turn of `sender` (an empty list when it has nothing to say)."""
        return self.start(sender, text, timeout).result()

    def parse(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
        """The intent the bot's NLU gives `text` (Rasa's /model/parse), or None if it can't tell."""
        return self._ask("POST", "/model/parse", {"text": text}, timeout, _intent_of).result()

    def status(self) -> bool:
        """True when the Rasa server answers on its root URL."""
        try:
            return self._ask("GET", "/", None, STATUS_TIMEOUT, lambda data: True).result()
        except BotUnavailable:
            return False

    def _ask(self, method: str, path: str, payload: dict | None, timeout: float,
             decode: Callable[[bytes], Any]) -> _HttpExchange:
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn = self._checkout(timeout)
        try:
            conn.request(method, self._prefix + path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return _HttpExchange(self, None, decode, failure=_describe(exc, timeout))
        return _HttpExchange(self, conn, decode)

    def _checkout(self, timeout: float) -> http.client.HTTPConnection:
        conn = None
        with self._lock:
            while conn is None and self._idle:
                conn = self._idle.pop()
                if not _still_open(conn):
                    conn.close()
                    conn = None
        if conn is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = factory(self._host, self._port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()


class _HttpExchange:
    def __init__(self, client: RasaRestClient, conn: http.client.HTTPConnection | None,
                 decode: Callable[[bytes], Any], *, failure: str | None = None):
        self._client, self._conn, self._decode, self._failure = client, conn, decode, failure

    def ready_within(self, seconds: float) -> bool:
        if self._conn is None or self._conn.sock is None:
            return True
        poller = select.poll()
        poller.register(self._conn.sock, select.POLLIN)
        return bool(poller.poll(max(0, int(seconds * 1000))))

    def result(self, within: float | None = None) -> Any:
        if self._conn is None:
            raise BotUnavailable(self._failure)
        conn, self._conn, self._failure = self._conn, None, "the answer was read already"
        timeout = conn.timeout if within is None else max(within, 0.001)
        try:
            conn.sock.settimeout(timeout)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # a half-read answer leaves the connection unusable
            raise BotUnavailable(_describe(exc, timeout)) from exc
        if response.will_close:
            conn.close()
        else:
            self._client._checkin(conn)
        if response.status >= 400:
            raise BotUnavailable(f"HTTP {response.status} from the bot")
        return self._decode(data)


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection has nothing to read unless the server closed it (Rasa's keep-alive
    timeout, a restart): then it is not reused."""
    if conn.sock is None:
        return False
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return not poller.poll(0)


def _describe(exc: BaseException, timeout: float | None) -> str:
    if isinstance(exc, TimeoutError):
        return f"ReadTimeout: no answer within {timeout}s"
    if isinstance(exc, ConnectionError):
        return f"ConnectionError: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _messages_of(data: bytes) -> list[dict]:
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise BotUnavailable("the bot's answer is not JSON") from exc
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise BotUnavailable(f"the bot's answer is not a list of messages: {str(answer)[:200]}")
    return answer


def _intent_of(data: bytes) -> str | None:
    try:
        return ((json.loads(data) or {}).get("intent") or {}).get("name")
    except (ValueError, AttributeError) as exc:
        raise BotUnavailable(f"parse failed: {exc}") from exc


Answer = Union[str, list, Callable[[str, str], Union[str, list]]]


class ScriptedBot:
    """A fake bot answering from a script: a dict of text -> answer, or a callable (sender, text) -> answer.

    An answer is a string (one text message), a list of strings or message dicts. Set `down` to make it
    unreachable, `delay` (seconds) to make it slow; a delay longer than the caller's timeout raises
    BotUnavailable once the timeout has passed, as the real client would.
    """

    def __init__(self, script: dict[str, Answer] | Callable[[str, str], str | list] | None = None,
                 *, default: str | list = "", down: bool = False, delay: float = 0.0,
                 intents: dict[str, str] | None = None):
        self.script = script if script is not None else {}
        self.intents = intents or {}
        self.default = default
        self.down = down
        self.delay = delay
        self.received: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
        with self._lock:
            self.received.append((sender, text))
        if self.down:
            raise BotUnavailable("ConnectionError: scripted bot is down")
        if self.delay:
            time.sleep(min(self.delay, timeout))
            if self.delay > timeout:
                raise BotUnavailable(f"ReadTimeout: scripted bot took {self.delay}s (timeout {timeout}s)")
        if callable(self.script):
            answer = self.script(sender, text)
        else:
            answer = self.script.get(text, self.default)
            if callable(answer):
                answer = answer(sender, text)
        return _as_messages(sender, answer)

    def start(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> Exchange:
        return _ThreadedExchange(lambda: self.send(sender, text, timeout))

    def parse(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
        """A scripted bot has no NLU; `intents` maps texts to the intent it should report."""
        if self.down:
            raise BotUnavailable("scripted bot is down")
        return self.intents.get(text)

    def status(self) -> bool:
        return not self.down


def _as_messages(sender: str, answer: str | list) -> list[dict]:
    items = [answer] if isinstance(answer, str) else list(answer)
    return [item if isinstance(item, dict) else {"recipient_id": sender, "text": item}
            for item in items if item != ""]


class _ThreadedExchange:
    """A turn run on a thread of its own, for a bot without a connection to watch (the scripted fake)."""

    _threads: ThreadPoolExecutor | None = None
    _lock = threading.Lock()

    def __init__(self, call: Callable[[], list[dict]]):
        with self._lock:
            if _ThreadedExchange._threads is None:
                _ThreadedExchange._threads = ThreadPoolExecutor(max_workers=32,
                                                                thread_name_prefix="scripted-bot")
        self._future = _ThreadedExchange._threads.submit(call)

    def ready_within(self, seconds: float) -> bool:
        return bool(wait_for_futures([self._future], timeout=max(0.0, seconds)).done)

    def result(self, within: float | None = None) -> list[dict]:
        return self._future.result(timeout=within)
