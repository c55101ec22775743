"""The bot: Rasa's REST channel behind a small interface, and a scripted fake for tests."""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, Protocol, Union

import urllib3

DEFAULT_TIMEOUT = 4.0
STATUS_TIMEOUT = 2.0


class BotUnavailable(Exception):
    """The bot gave no usable answer: down, too slow, failing, or answering something that is not a list."""


class BotClient(Protocol):
    def send(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]: ...

    def parse(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str | None: ...

    def status(self) -> bool: ...


class RasaRestClient:
    """Talks to a Rasa server's REST channel over a pool of kept-alive HTTP connections.

    urllib3 directly rather than requests: the webhook calls the bot on every message, and requests'
    per-call work (proxy lookups in the environment, hooks, cookie jars) costs more CPU than the call itself.
    """

    def __init__(self, base_url: str, *, pool_size: int = 20):
        self.base_url = base_url.rstrip("/")
        # Webhook requests and outbox workers call the bot concurrently; the pool keeps their connections
        # alive instead of opening one per message. No retries: a failed turn is handed to staff, and a
        # repeated POST would be a second turn for the bot.
        self._http = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def _request(self, method: str, path: str, payload: dict | None, timeout: float) -> urllib3.BaseHTTPResponse:
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if body is not None else None
        return self._http.request(method, f"{self.base_url}{path}", body=body, headers=headers,
                                  timeout=timeout, redirect=False)

    def send(self, sender: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
        """The bot's messages for one turn of `sender` (an empty list when it has nothing to say)."""
        try:
            res = self._request("POST", "/webhooks/rest/webhook", {"sender": sender, "message": text}, timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise BotUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if res.status >= 400:
            raise BotUnavailable(f"HTTP {res.status} from the bot")
        try:
            answer = json.loads(res.data)
        except ValueError as exc:
            raise BotUnavailable("the bot's answer is not JSON") from exc
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise BotUnavailable(f"the bot's answer is not a list of messages: {str(answer)[:200]}")
        return answer

    def parse(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
        """The intent the bot's NLU gives `text` (Rasa's /model/parse), or None if it can't tell."""
        try:
            res = self._request("POST", "/model/parse", {"text": text}, timeout)
            if res.status >= 400:
                raise BotUnavailable(f"parse failed: HTTP {res.status}")
            return ((json.loads(res.data) or {}).get("intent") or {}).get("name")
        except (urllib3.exceptions.HTTPError, ValueError, AttributeError) as exc:
            raise BotUnavailable(f"parse failed: {exc}") from exc

    def status(self) -> bool:
        """True when the Rasa server answers on its root URL."""
        try:
            return self._request("GET", "/", None, STATUS_TIMEOUT).status < 400
        except urllib3.exceptions.HTTPError:
            return False


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
