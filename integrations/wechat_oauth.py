"""WeChat web-page authorisation (网页授权) for the H5 pages: wechatpy's WeChatOAuth with a base URL and timeout.

snsapi_base gives the openid silently; snsapi_userinfo asks the resident first. Either way the code the
browser brings back is exchanged once for the openid.
"""
from __future__ import annotations

from dataclasses import dataclass

import requests
from wechatpy.exceptions import WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

SCOPES = ("snsapi_base", "snsapi_userinfo")
WECHAT_API_ORIGIN = "https://api.weixin.qq.com/"


@dataclass(frozen=True)
class OAuthIdentity:
    openid: str
    scope: str
    unionid: str | None = None


class WeChatOAuthError(Exception):
    """The code was refused (used, expired, forged) or WeChat could not be reached; errcode is WeChat's."""

    def __init__(self, errcode: int | None, message: str):
        super().__init__(message)
        self.errcode = errcode


class _TimedOAuth(WeChatOAuth):
    """WeChatOAuth sends without a timeout; a hung WeChat must not hang a sign-in request."""

    def __init__(self, *args, api_base: str, timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.API_BASE_URL = api_base
        self._timeout = timeout

    def _request(self, method, url_or_endpoint, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


class WeChatOAuthClient:
    def __init__(self, app_id: str, secret: str, api_base: str = WECHAT_API_ORIGIN, *, timeout: float = 5.0):
        self._app_id, self._secret, self._api_base, self._timeout = app_id, secret, api_base, timeout

    def authorize_url(self, *, redirect_uri: str, scope: str, state: str) -> str:
        return self._oauth(redirect_uri=redirect_uri, scope=scope, state=state).authorize_url

    def exchange(self, code: str) -> OAuthIdentity:
        oauth = self._oauth()
        try:
            answer = oauth.fetch_access_token(code)
        except WeChatOAuthException as exc:
            raise WeChatOAuthError(exc.errcode, str(exc.errmsg or "WeChat refused the code")) from exc
        except requests.RequestException as exc:
            raise WeChatOAuthError(None, f"{type(exc).__name__}") from exc
        return OAuthIdentity(openid=answer["openid"], scope=answer.get("scope", "snsapi_base"),
                             unionid=answer.get("unionid"))

    def _oauth(self, *, redirect_uri: str = "", scope: str = "snsapi_base", state: str = "") -> WeChatOAuth:
        return _TimedOAuth(self._app_id, self._secret, redirect_uri, scope=scope, state=state,
                           api_base=self._api_base, timeout=self._timeout)


def oauth_api_base(cgi_base: str) -> str:
    """The OAuth endpoints (/sns/...) live beside /cgi-bin/ on the same host, stub or real."""
    head, sep, _ = cgi_base.partition("cgi-bin/")
    return head if sep else cgi_base.rstrip("/") + "/"
