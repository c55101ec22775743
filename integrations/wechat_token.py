"""wechatpy's client with one access_token per official account, shared in Redis by every process.

WeChat allows a single live access_token per account: fetching a new one retires the old one after a
grace period, so workers that each refresh on their own knock each other out (40001). Here the token
sits in Redis and only the holder of a Redis lock fetches a new one; the others wait for the lock and
then reuse what the holder stored.
"""
from __future__ import annotations

import time

from redis import Redis
from redis.exceptions import LockError
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

KEY_PREFIX = "linli:wechat"
# A token this close to its end is not handed out any more: a request started with it could land
# after it expired. wechatpy itself refreshes when fewer than 60 s are left, so this must exceed 60.
MIN_REMAINING_SECONDS = 120
# WeChat answers expires_in=7200; storing it for less makes the refresh happen while the old token is
# still valid, so requests in flight at that moment do not fail.
EARLY_REFRESH_SECONDS = 300


class TokenLockBusy(Exception):
    """Another process held the refresh lock for longer than we were willing to wait."""


class SharedTokenWeChatClient(WeChatClient):
    """A WeChatClient whose token lives in Redis and is refreshed by one process at a time."""

    def __init__(self, appid: str, secret: str, *, api_base: str, redis: Redis, timeout: float):
        # auto_retry=False: wechatpy's own retry on 40001 recurses without a bound and refreshes
        # without the lock; the sender does exactly one refresh and one retry instead.
        super().__init__(appid, secret, session=RedisStorage(redis, prefix=KEY_PREFIX),
                         timeout=timeout, auto_retry=False)
        # An instance attribute shadows the class's public default; every API call uses it.
        self.API_BASE_URL = api_base if api_base.endswith("/") else api_base + "/"
        self._redis = redis
        self._token_redis_key = self.session.key_name(self.access_token_key)
        # The lock outlives a stuck holder by little, and waiters give up after about the same time.
        self._lock_ttl = 2 * float(timeout) + 5

    def fetch_access_token(self):
        """Called by wechatpy when this process has no usable token."""
        self.refresh_access_token(stale=None)

    def refresh_access_token(self, *, stale: str | None) -> None:
        """Make sure Redis holds a token newer than `stale`, fetching it only if nobody else has."""
        lock = self._redis.lock(f"{self._token_redis_key}:lock", timeout=self._lock_ttl,
                                blocking_timeout=self._lock_ttl)
        if not lock.acquire():
            raise TokenLockBusy(f"token refresh lock held for more than {self._lock_ttl:.0f}s")
        try:
            if self._adopt_stored_token(stale):
                return
            self._fetch_token()
        finally:
            try:
                lock.release()
            except LockError:  # it expired while we fetched; the next holder's lock is not ours
                pass

    def _adopt_stored_token(self, stale: str | None) -> bool:
        token = self.session.get(self.access_token_key)
        remaining = self._redis.ttl(self._token_redis_key)
        if not token or token == stale:
            return False
        if remaining == -1:  # stored without an expiry (handed in by an operator): trust it
            self.expires_at = None
            return True
        if remaining > MIN_REMAINING_SECONDS:
            self.expires_at = int(time.time()) + remaining
            return True
        return False

    def _fetch_token(self) -> None:
        # wechatpy's own fetch has a hard-coded URL and no timeout, so the request is made here.
        res = self._http.get(
            f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        if res.status_code >= 400:
            raise WeChatClientException(None, f"HTTP {res.status_code}", client=self,
                                        request=res.request, response=res)
        result = res.json()
        if result.get("errcode", 0) != 0 or "access_token" not in result:
            raise WeChatClientException(result.get("errcode"), result.get("errmsg", "no access_token"),
                                        client=self, request=res.request, response=res)
        expires_in = int(result.get("expires_in", 7200))
        ttl = expires_in - EARLY_REFRESH_SECONDS if expires_in > 2 * EARLY_REFRESH_SECONDS else expires_in
        self.session.set(self.access_token_key, result["access_token"], ttl)
        self.expires_at = int(time.time()) + ttl
