"""Client for the app's internal API (/api/internal, see docs/contracts.md): the bot's only way to the app."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp

DEFAULT_URL = "http://127.0.0.1:5000"


class ApiUnavailable(Exception):
    """The app could not be reached, timed out or failed (5xx): the resident should try later."""


class ApiError(Exception):
    """The app refused the request with a 4xx and a domain error code (slot_taken, not_found ...)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class LinliApi:
    base_url: str
    token: str
    # Rasa waits for the action server, and WeChat waits 5 s for the whole answer: fail fast.
    timeout: float = 4.0

    @classmethod
    def from_env(cls) -> "LinliApi":
        return cls(
            base_url=os.environ.get("LINLI_API_URL", DEFAULT_URL),
            token=os.environ.get("BOT_SERVICE_TOKEN", ""),
            timeout=float(os.environ.get("LINLI_API_TIMEOUT", "4")),
        )

    async def get_faq(self, topic: str) -> dict:
        return await self._request("GET", f"/faq/{topic}")

    async def list_departments(self) -> list[dict]:
        return (await self._request("GET", "/departments"))["departments"]

    async def list_slots(
        self, *, sender: str, department: str, date: str, session: Optional[str] = None, limit: int = 5
    ) -> list[dict]:
        params = {"sender": sender, "department": department, "date": date, "session": session, "limit": limit}
        return (await self._request("GET", "/slots", params=params))["slots"]

    async def book(self, *, sender: str, slot_id: Any) -> dict:
        body = await self._request("POST", "/appointments", json={"sender": sender, "slot_id": slot_id})
        return body["appointment"]

    async def hold(self, *, sender: str, slot_id: Any) -> dict:
        """Holds a seat while the resident confirms (`expires_at`); 409 slot_taken / already_holding."""
        return (await self._request("POST", "/holds", json={"sender": sender, "slot_id": slot_id}))["hold"]

    async def confirm_hold(self, *, sender: str, hold_id: Any) -> dict:
        body = await self._request("POST", f"/holds/{hold_id}/confirm", json={"sender": sender})
        return body["appointment"]

    async def release_hold(self, *, sender: str, hold_id: Any) -> dict:
        return (await self._request("POST", f"/holds/{hold_id}/release", json={"sender": sender}))["hold"]

    async def join_waitlist(self, *, sender: str, department: str, date: str) -> dict:
        body = await self._request("POST", "/waitlist", json={"sender": sender, "department": department, "date": date})
        return body["entry"]

    async def list_waitlist(self, *, sender: str) -> list[dict]:
        return (await self._request("GET", "/waitlist", params={"sender": sender}))["entries"]

    async def accept_offer(self, *, sender: str, entry_id: Any) -> dict:
        body = await self._request("POST", f"/waitlist/{entry_id}/accept", json={"sender": sender})
        return body["appointment"]

    async def leave_waitlist(self, *, sender: str, entry_id: Any) -> dict:
        return (await self._request("POST", f"/waitlist/{entry_id}/leave", json={"sender": sender}))["entry"]

    async def list_appointments(self, *, sender: str) -> list[dict]:
        return (await self._request("GET", "/appointments", params={"sender": sender}))["appointments"]

    async def cancel_appointment(self, *, sender: str, appointment_id: Any) -> dict:
        body = await self._request("POST", f"/appointments/{appointment_id}/cancel", json={"sender": sender})
        return body["appointment"]

    async def raise_help(self, *, sender: str) -> dict:
        return (await self._request("POST", "/help", json={"sender": sender}))["alert"]

    async def handoff(self, *, sender: str, reason: str, text: str) -> dict:
        body = await self._request("POST", "/handoff", json={"sender": sender, "reason": reason, "text": text})
        return body["ticket"]

    async def _request(self, method: str, path: str, *, params: Optional[dict] = None, json: Any = None) -> dict:
        url = f"{self.base_url.rstrip('/')}/api/internal{path}"
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        headers = {"Authorization": f"Bearer {self.token}"}
        # One session per call: actions run on different event loops (action server, tests),
        # and a session is bound to the loop that created it.
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.request(method, url, params=query, json=json, headers=headers) as resp:
                    body = await resp.json(content_type=None) if resp.content_length != 0 else None
                    status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ApiUnavailable(f"{method} {path}: {exc!r}") from exc
        if status >= 500:
            raise ApiUnavailable(f"{method} {path}: HTTP {status}")
        if status >= 400:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            raise ApiError(status, error.get("code", "http_%d" % status), error.get("message", ""))
        return body or {}
