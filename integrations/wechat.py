"""Messages to residents on WeChat: the sender interface, the real one (wechatpy) and a recording one."""
from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol
from urllib.parse import parse_qs, urlsplit

import requests
from redis import Redis
from redis.exceptions import RedisError
from wechatpy.exceptions import WeChatClientException

from integrations.wechat_token import SharedTokenWeChatClient, TokenLockBusy

SYSTEM_BUSY = -1
TOKEN_INVALID = 40001
TOKEN_EXPIRED = 42001
OUTSIDE_WINDOW = 45015  # 客服 messages only within 48 h of the resident's last message
KEFU_LIMIT = 45047  # 客服 message count exceeded (after a menu tap or a subscribe event WeChat takes only a few)
KEFU_CLOSED = frozenset({OUTSIDE_WINDOW, KEFU_LIMIT})
NO_GRANT = 43101  # subscribe message: the resident refused it, or their one-time grant is used up
TOKEN_REJECTED = frozenset({TOKEN_INVALID, 40014, TOKEN_EXPIRED})


class WeChatSender(Protocol):
    def send_text(self, openid: str, text: str) -> None: ...

    def send_template(self, openid: str, template_id: str, data: dict, url: str | None = None) -> None: ...

    def send_subscribe(self, openid: str, template_id: str, data: dict, page: str | None = None) -> None: ...


class WeChatApiError(Exception):
    """WeChat refused or could not take a message; `errcode` is WeChat's code (None for HTTP/network)."""

    def __init__(self, errcode: int | None, errmsg: str, *, http_status: int | None = None,
                 transient: bool = False):
        super().__init__(f"WeChat error {errcode}: {errmsg}" if errcode is not None else f"WeChat: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.http_status = http_status
        self._transient = transient

    @property
    def outside_window(self) -> bool:
        return self.errcode == OUTSIDE_WINDOW

    @property
    def kefu_closed(self) -> bool:
        """客服 will not carry this message to the resident now (45015, 45047): another way must."""
        return self.errcode in KEFU_CLOSED

    @property
    def no_grant(self) -> bool:
        return self.errcode == NO_GRANT

    @property
    def retryable(self) -> bool:
        # A token still rejected after our one refresh means someone outside our lock refreshed
        # (a second system on the same account); the next attempt refreshes again and usually works.
        return (self._transient or self.errcode == SYSTEM_BUSY or self.errcode in TOKEN_REJECTED
                or (self.http_status is not None and self.http_status >= 500))


class WeChatClientSender:
    """Sends through wechatpy's WeChatClient, with the access_token shared by all processes in Redis."""

    def __init__(self, app_id: str, secret: str, api_base: str, redis: Redis, *, timeout: float = 5.0):
        self._client = SharedTokenWeChatClient(app_id, secret, api_base=api_base, redis=redis, timeout=timeout)

    def send_text(self, openid: str, text: str) -> None:
        self._call(lambda: self._client.message.send_text(openid, text))

    def send_template(self, openid: str, template_id: str, data: dict, url: str | None = None) -> None:
        self._call(lambda: self._client.message.send_template(openid, template_id, data, url=url))

    def send_subscribe(self, openid: str, template_id: str, data: dict, page: str | None = None) -> None:
        """A subscribe message (订阅通知, message/subscribe/bizsend); `data` is {keyword: {"value": ...}}."""
        self._call(lambda: self._client.message.send_subscribe_message(openid, template_id, data, page=page))

    def _call(self, send: Callable[[], object]) -> None:
        try:
            try:
                _check_answer(send())
            except WeChatClientException as exc:
                rejected_token = _token_sent_with(exc)
                if exc.errcode not in TOKEN_REJECTED or rejected_token is None:
                    raise
                # Exactly one refresh (or adoption of a token another process just fetched), one retry.
                self._client.refresh_access_token(stale=rejected_token)
                _check_answer(send())
        except WeChatClientException as exc:
            status = exc.response.status_code if exc.response is not None else None
            raise WeChatApiError(exc.errcode, str(exc.errmsg), http_status=status) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise WeChatApiError(None, f"{type(exc).__name__}: {exc}", transient=True) from exc
        except requests.RequestException as exc:
            raise WeChatApiError(None, f"{type(exc).__name__}: {exc}") from exc
        except (RedisError, TokenLockBusy) as exc:  # the token store is part of sending
            raise WeChatApiError(None, f"token store: {exc}", transient=True) from exc


def _check_answer(result: object) -> None:
    # wechatpy hands back the raw response when the body is not JSON (a proxy's error page).
    if not isinstance(result, dict):
        raise WeChatApiError(None, "answer was not JSON", transient=True)


def _token_sent_with(exc: WeChatClientException) -> str | None:
    """The access_token the refused request carried (None for the token request itself)."""
    if exc.request is None or not exc.request.url:
        return None
    values = parse_qs(urlsplit(exc.request.url).query).get("access_token")
    return values[0] if values else None


@dataclass(frozen=True)
class RecordedWeChatMessage:
    openid: str
    kind: str  # "text", "template" or "subscribe"
    text: str | None = None
    template_id: str | None = None
    data: dict | None = None
    url: str | None = None
    page: str | None = None


@dataclass(eq=False)
class RecordingWeChatSender:
    """Keeps what would have been sent (the default without credentials, and the unit-test fake)."""

    sent: list[RecordedWeChatMessage] = field(default_factory=list)
    _planned_errors: deque = field(default_factory=deque, repr=False)
    _closed_windows: set = field(default_factory=set, repr=False)
    _grants: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, *errors: Exception) -> None:
        """The next sends raise these errors, one each, in order (nothing is recorded for them)."""
        with self._lock:
            self._planned_errors.extend(errors)

    def close_window(self, *openids: str) -> None:
        """客服 text to these residents fails with 45015 until reopened; templates still go through."""
        with self._lock:
            self._closed_windows.update(openids)

    def open_window(self, *openids: str) -> None:
        with self._lock:
            self._closed_windows.difference_update(openids)

    def grant(self, openid: str, template_id: str, times: int = 1) -> None:
        """The resident accepted `times` one-time subscribe messages of this template (else 43101)."""
        with self._lock:
            self._grants[(openid, template_id)] = self._grants.get((openid, template_id), 0) + times

    def send_text(self, openid: str, text: str) -> None:
        with self._lock:
            self._raise_planned()
            if openid in self._closed_windows:
                raise WeChatApiError(OUTSIDE_WINDOW, "response out of time limit or subscription is canceled")
            self.sent.append(RecordedWeChatMessage(openid=openid, kind="text", text=text))

    def send_template(self, openid: str, template_id: str, data: dict, url: str | None = None) -> None:
        with self._lock:
            self._raise_planned()
            self.sent.append(RecordedWeChatMessage(openid=openid, kind="template", template_id=template_id,
                                                   data=copy.deepcopy(data), url=url))

    def send_subscribe(self, openid: str, template_id: str, data: dict, page: str | None = None) -> None:
        with self._lock:
            self._raise_planned()
            if self._grants.get((openid, template_id), 0) < 1:
                raise WeChatApiError(NO_GRANT, "user refuse to accept the msg")
            self._grants[(openid, template_id)] -= 1
            self.sent.append(RecordedWeChatMessage(openid=openid, kind="subscribe", template_id=template_id,
                                                   data=copy.deepcopy(data), page=page))

    def texts_to(self, openid: str) -> list[str]:
        with self._lock:
            return [m.text for m in self.sent if m.openid == openid and m.kind == "text"]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
            self._planned_errors.clear()
            self._closed_windows.clear()
            self._grants.clear()

    def _raise_planned(self) -> None:
        if self._planned_errors:
            raise self._planned_errors.popleft()


def build_wechat_sender(*, app_id: str, secret: str, api_base: str, redis: Redis) -> WeChatSender:
    """The real sender when the account's credentials are configured, else the recording one."""
    if app_id and secret:
        return WeChatClientSender(app_id, secret, api_base, redis)
    return RecordingWeChatSender()
