"""A stand-in for WeChat's official-account API on loopback: token, 客服, template and subscribe-message (订阅通知)
sends, OAuth codes.

In tests: the `wechat_stub` fixture (tests/stubs/fixtures.py). Standalone, for `make run`:
    python -m tests.stubs.wechat_stub --port 8101 [--app-id wx... --secret ...]
then WECHAT_API_BASE=http://127.0.0.1:8101/cgi-bin/. Control over HTTP: GET /_stub/calls,
POST /_stub/fail, /_stub/reset, /_stub/expire_tokens, /_stub/outside_window, /_stub/kefu_limit, /_stub/oauth_code,
/_stub/subscribe_template, /_stub/subscribe_grant, GET /_stub/state.
"""
from __future__ import annotations

import argparse
import os
import secrets
import threading
import time
from dataclasses import dataclass

from flask import Response, jsonify, request

from tests.stubs.server import CONTROL_PREFIX, PlannedFailure, StubApp

DEFAULT_APP_ID = "wx5f3c2a1b0d9e8f76"
DEFAULT_SECRET = "7d9a1c3e5b7f9d1a3c5e7b9d1f3a5c7e"

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    41030: "invalid page rid",
    41001: "access_token missing",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    44004: "text content is empty",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    47003: "argument invalid!",
}


# 订阅通知 keyword types and the longest value WeChat takes for each (time/date are checked for shape only).
SUBSCRIBE_VALUE_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "number": 32,
                          "letter": 32, "symbol": 5, "amount": 32, "phone_number": 17, "car_number": 8,
                          "time": 64, "date": 64, "const": 20}


def wechat_error(errcode: int, message: str | None = None) -> Response:
    # WeChat answers errors with HTTP 200 and a JSON body; its messages end with a request id.
    return jsonify(errcode=errcode, errmsg=f"{message or ERRMSG.get(errcode, 'error')} rid: {secrets.token_hex(12)}")


@dataclass
class _Token:
    expires_at: float
    retired_at: float | None = None  # set when a newer token was issued (after the grace period)


class WeChatStub(StubApp):
    """WeChat's API for one official account, validating what it receives and recording every call."""

    def __init__(self, *, app_id: str = DEFAULT_APP_ID, secret: str = DEFAULT_SECRET,
                 token_grace: float = 300.0, token_ttl: int = 7200):
        super().__init__("wechat_stub")
        self.app_id = app_id
        self.secret = secret
        self.token_grace = token_grace  # WeChat keeps the previous token valid for 5 minutes
        self.token_ttl = token_ttl
        self._tokens: dict[str, _Token] = {}
        self._tokens_issued = 0
        self._outside_window: set[str] = set()
        self._kefu_allowance: dict[str, int] = {}  # openid -> 客服 messages WeChat still takes (absent: no limit)
        self._oauth_codes: dict[str, dict] = {}
        self._subscribe_templates: dict[str, tuple[str, ...]] = {}  # template id -> its keywords
        self._subscribe_grants: dict[tuple[str, str], int] = {}  # (openid, template id) -> one-time sends allowed
        self._state_lock = threading.Lock()
        self._msgid = 1000
        add = self.flask.add_url_rule
        add("/cgi-bin/token", "token", self._token, methods=["GET"])
        add("/cgi-bin/message/custom/send", "custom_send", self._custom_send, methods=["POST"])
        add("/cgi-bin/message/template/send", "template_send", self._template_send, methods=["POST"])
        add("/cgi-bin/message/subscribe/bizsend", "subscribe_send", self._subscribe_send, methods=["POST"])
        add("/sns/oauth2/access_token", "oauth_access_token", self._oauth_access_token, methods=["GET"])
        add(f"{CONTROL_PREFIX}expire_tokens", "stub_expire_tokens", self._http_expire_tokens, methods=["POST"])
        add(f"{CONTROL_PREFIX}outside_window", "stub_outside_window", self._http_outside_window, methods=["POST"])
        add(f"{CONTROL_PREFIX}kefu_limit", "stub_kefu_limit", self._http_kefu_limit, methods=["POST"])
        add(f"{CONTROL_PREFIX}oauth_code", "stub_oauth_code", self._http_oauth_code, methods=["POST"])
        add(f"{CONTROL_PREFIX}state", "stub_state", self._http_state, methods=["GET"])
        add(f"{CONTROL_PREFIX}subscribe_template", "stub_subscribe_template", self._http_subscribe_template,
            methods=["POST"])
        add(f"{CONTROL_PREFIX}subscribe_grant", "stub_subscribe_grant", self._http_subscribe_grant, methods=["POST"])

    @property
    def api_base(self) -> str:
        """What WECHAT_API_BASE should be for a client aimed at this stub."""
        return f"{self.base_url}/cgi-bin/"

    # --- control (also over HTTP) ---

    @property
    def tokens_issued(self) -> int:
        with self._state_lock:
            return self._tokens_issued

    def valid_tokens(self) -> list[str]:
        now = time.time()
        with self._state_lock:
            return [value for value, token in self._tokens.items() if self._token_error(token, now) == 0]

    def expire_tokens(self) -> None:
        """Every token issued so far is past its expiry from now on (requests with it get 42001)."""
        now = time.time()
        with self._state_lock:
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)

    def set_outside_window(self, *openids: str, closed: bool = True) -> None:
        """客服 messages to these residents get 45015 (their last message is older than 48 hours)."""
        with self._state_lock:
            (self._outside_window.update if closed else self._outside_window.difference_update)(openids)

    def limit_kefu(self, openid: str, messages: int | None) -> None:
        """WeChat takes only `messages` more 客服 messages to this resident, then answers 45047 (after a menu tap or
        a subscribe event it allows only a few in a short window); None lifts the limit."""
        with self._state_lock:
            if messages is None:
                self._kefu_allowance.pop(openid, None)
            else:
                self._kefu_allowance[openid] = messages

    def issue_oauth_code(self, openid: str, scope: str = "snsapi_base") -> str:
        """A code WeChat would hand the resident's browser after the OAuth redirect."""
        code = secrets.token_hex(16)
        with self._state_lock:
            self._oauth_codes[code] = {"openid": openid, "scope": scope, "used": False}
        return code

    def add_subscribe_template(self, template_id: str, *keywords: str) -> None:
        """A template the account picked from the 订阅通知 library, with its keywords ("thing1", "time2")."""
        with self._state_lock:
            self._subscribe_templates[template_id] = tuple(keywords)

    def grant_subscribe(self, openid: str, template_id: str, times: int = 1) -> None:
        """The resident accepted this template `times` times in the popup (each allows one message)."""
        with self._state_lock:
            key = (openid, template_id)
            self._subscribe_grants[key] = self._subscribe_grants.get(key, 0) + times

    def revoke_subscribe(self, openid: str, template_id: str) -> None:
        """The resident rejected the template in their settings."""
        with self._state_lock:
            self._subscribe_grants.pop((openid, template_id), None)

    def subscribe_grants_left(self, openid: str, template_id: str) -> int:
        with self._state_lock:
            return self._subscribe_grants.get((openid, template_id), 0)

    def subscribe_messages(self) -> list[dict]:
        """The subscribe messages WeChat accepted (errcode 0), oldest first."""
        return [call["json"] for call in self.calls_to("/cgi-bin/message/subscribe/bizsend")
                if (call["response"] or {}).get("errcode") == 0]

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._tokens.clear()
            self._tokens_issued = 0
            self._outside_window.clear()
            self._kefu_allowance.clear()
            self._oauth_codes.clear()
            self._subscribe_templates.clear()
            self._subscribe_grants.clear()

    def failure_response(self, failure: PlannedFailure) -> Response:
        if failure.code is None:
            return Response(f"<html><body>{failure.status} stub failure</body></html>", status=failure.status,
                            mimetype="text/html")
        response = wechat_error(failure.code, failure.message)
        if failure.status is not None:
            response.status_code = failure.status
        return response

    # --- the API ---

    def _token(self):
        args = request.args
        if args.get("grant_type") != "client_credential":
            return wechat_error(40002)
        if args.get("appid") != self.app_id:
            return wechat_error(40013)
        if args.get("secret") != self.secret:
            return wechat_error(40125)
        value = secrets.token_urlsafe(96)
        now = time.time()
        with self._state_lock:
            for token in self._tokens.values():
                if token.retired_at is None:
                    token.retired_at = now + self.token_grace
            self._tokens[value] = _Token(expires_at=now + self.token_ttl)
            self._tokens_issued += 1
        return jsonify(access_token=value, expires_in=self.token_ttl)

    def _send_request(self) -> tuple[dict, Response | None]:
        """The checks every send API makes first: the token, a JSON object, an addressee; (body, refusal)."""
        refused = self._check_access_token()
        if refused:
            return {}, refused
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return {}, wechat_error(47001)
        if not isinstance(body.get("touser"), str) or not body["touser"]:
            return body, wechat_error(40003)
        return body, None

    def _custom_send(self):
        body, refused = self._send_request()
        if refused:
            return refused
        if body.get("msgtype") != "text":
            return wechat_error(40008)  # the stub speaks text only, which is all Linli sends by 客服
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            return wechat_error(47001)
        if not text["content"].strip():
            return wechat_error(44004)
        with self._state_lock:
            if body["touser"] in self._outside_window:
                return wechat_error(45015)
            allowance = self._kefu_allowance.get(body["touser"])
            if allowance is not None:
                if allowance < 1:
                    return wechat_error(45047)
                self._kefu_allowance[body["touser"]] = allowance - 1
        return jsonify(errcode=0, errmsg="ok")

    def _template_send(self):
        body, refused = self._send_request()
        if refused:
            return refused
        if not isinstance(body.get("template_id"), str) or not body["template_id"]:
            return wechat_error(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "value" in v for v in data.values()):
            return wechat_error(47001, "data format error: every data field needs a value")
        with self._state_lock:
            self._msgid += 1
            msgid = self._msgid
        return jsonify(errcode=0, errmsg="ok", msgid=msgid)

    def _subscribe_send(self):
        """message/subscribe/bizsend: checked as WeChat does, in its order; each accepted send spends a grant."""
        body, refused = self._send_request()
        if refused:
            return refused
        with self._state_lock:
            keywords = self._subscribe_templates.get(body.get("template_id"))
        if not isinstance(body.get("template_id"), str) or keywords is None:
            return wechat_error(40037)
        if "page" in body and not isinstance(body["page"], str):
            return wechat_error(41030)
        data = body.get("data")
        if not isinstance(data, dict):
            return wechat_error(47001)
        for keyword in keywords:
            problem = _subscribe_value_problem(keyword, data.get(keyword))
            if problem:
                return wechat_error(47003, f"argument invalid! data.{keyword}.value {problem}")
        with self._state_lock:
            key = (body["touser"], body["template_id"])
            if self._subscribe_grants.get(key, 0) < 1:
                return wechat_error(43101)
            self._subscribe_grants[key] -= 1
        return jsonify(errcode=0, errmsg="ok")

    def _oauth_access_token(self):
        args = request.args
        if args.get("appid") != self.app_id:
            return wechat_error(40013)
        if args.get("secret") != self.secret:
            return wechat_error(40125)
        if args.get("grant_type") != "authorization_code":
            return wechat_error(40002)
        with self._state_lock:
            grant = self._oauth_codes.get(args.get("code", ""))
            if grant is None:
                return wechat_error(40029)
            if grant["used"]:
                return wechat_error(40163)
            grant["used"] = True
        return jsonify(access_token=secrets.token_urlsafe(64), expires_in=7200,
                       refresh_token=secrets.token_urlsafe(64), openid=grant["openid"], scope=grant["scope"])

    def _check_access_token(self) -> Response | None:
        value = request.args.get("access_token")
        if not value:
            return wechat_error(41001)
        with self._state_lock:
            token = self._tokens.get(value)
            errcode = 40001 if token is None else self._token_error(token, time.time())
        return wechat_error(errcode) if errcode else None

    @staticmethod
    def _token_error(token: _Token, now: float) -> int:
        if token.retired_at is not None and token.retired_at <= now:
            return 40001  # superseded by a newer token: "invalid or not latest"
        if token.expires_at <= now:
            return 42001
        return 0

    # --- control over HTTP ---

    def _http_expire_tokens(self):
        self.expire_tokens()
        return jsonify(ok=True)

    def _http_outside_window(self):
        body = request.get_json(force=True)
        self.set_outside_window(*body.get("openids", []), closed=body.get("closed", True))
        return jsonify(ok=True)

    def _http_kefu_limit(self):
        body = request.get_json(force=True)
        self.limit_kefu(body["openid"], None if body.get("messages") is None else int(body["messages"]))
        return jsonify(ok=True)

    def _http_oauth_code(self):
        body = request.get_json(force=True)
        return jsonify(code=self.issue_oauth_code(body["openid"], body.get("scope", "snsapi_base")))

    def _http_subscribe_template(self):
        body = request.get_json(force=True)
        self.add_subscribe_template(body["template_id"], *body.get("keywords", []))
        return jsonify(ok=True)

    def _http_subscribe_grant(self):
        body = request.get_json(force=True)
        if body.get("revoke"):
            self.revoke_subscribe(body["openid"], body["template_id"])
        else:
            self.grant_subscribe(body["openid"], body["template_id"], int(body.get("times", 1)))
        return jsonify(ok=True)

    def _http_state(self):
        return jsonify(tokens_issued=self.tokens_issued, valid_tokens=len(self.valid_tokens()),
                       app_id=self.app_id)


def _subscribe_value_problem(keyword: str, field: object) -> str | None:
    """Why WeChat would refuse this keyword's value (47003), or None."""
    if not isinstance(field, dict) or not isinstance(field.get("value"), str):
        return "is empty"
    value = field["value"]
    if not value.strip():
        return "is empty"
    limit = SUBSCRIBE_VALUE_LIMITS.get(keyword.rstrip("0123456789"))
    if limit is not None and len(value) > limit:
        return f"exceeds limit {limit}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--app-id", default=os.environ.get("WECHAT_APP_ID") or DEFAULT_APP_ID)
    parser.add_argument("--secret", default=os.environ.get("WECHAT_SECRET") or DEFAULT_SECRET)
    parser.add_argument("--token-grace", type=float, default=300.0)
    args = parser.parse_args()
    stub = WeChatStub(app_id=args.app_id, secret=args.secret, token_grace=args.token_grace)
    try:
        stub.serve(host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
