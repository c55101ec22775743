"""Fixtures for the action tests: a real fake-app HTTP server on 127.0.0.1 and tracker builders."""
from __future__ import annotations

import socket
import threading
from typing import Any, Iterator, Optional

import pytest
from rasa_sdk import Tracker

from tests.fake_app import FakeState, load_faq, make_server

TODAY = "2025-03-12"  # a Wednesday
SENDER = "conv-42"


@pytest.fixture()
def fake_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeState]:
    server, state = make_server(0, FakeState(faq=load_faq()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LINLI_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("BOT_SERVICE_TOKEN", state.token)
    monkeypatch.setenv("LINLI_TODAY", TODAY)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture()
def app_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Points the bot at a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LINLI_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LINLI_TODAY", TODAY)


def make_tracker(
    *,
    text: str = "",
    intent: str = "inform",
    entities: Optional[list[dict]] = None,
    slots: Optional[dict[str, Any]] = None,
    response_selector: Optional[dict] = None,
    active_loop: Optional[str] = None,
    sender: str = SENDER,
    confidence: float = 0.99,
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "response_selector": response_selector or {},
    }
    events = [{"event": "user", "text": text, "parse_data": latest}]
    events += [{"event": "slot", "name": k, "value": v} for k, v in (slots or {}).items()]
    return Tracker(
        sender_id=sender,
        slots=dict(slots or {}),
        latest_message=latest,
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )
