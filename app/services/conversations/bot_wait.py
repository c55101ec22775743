"""How long a webhook may hold its worker waiting for the bot.

A webhook waits for the bot's answer up to its budget, so that the answer can go back in the response (WeChat's
passive reply) or the turn ends in the request (SMS). An answer that misses the wait is not lost: a bot thread
sends it when it comes. But under gunicorn's sync workers (deploy/gunicorn.conf.py) every wait holds a whole
worker, so a slow bot would take every worker for the full budget per message and leave other residents'
messages queued behind it, past WeChat's 5 s.

So once an answer in this process has missed its wait, the webhooks of the process stop waiting for the bot for
`BOT_BEHIND_SECONDS`: their replies go out when the bot answers. The next message after that waits again, and
tells whether the bot has caught up. Per process and per app, which is what holds the workers.
"""
from __future__ import annotations

import threading
import time

from flask import current_app

from app.core.config import setting

STATE_KEY = "linli.bot_behind_until"
_lock = threading.Lock()


def allowed(budget: float) -> float:
    """Seconds this webhook may wait for the bot, out of its `budget`."""
    behind_until = current_app.extensions.get(STATE_KEY, 0.0)
    return 0.0 if time.monotonic() < behind_until else budget


def missed() -> None:
    """An answer missed a full wait: the bot is behind."""
    until = time.monotonic() + setting("BOT_BEHIND_SECONDS")
    with _lock:
        current_app.extensions[STATE_KEY] = max(until, current_app.extensions.get(STATE_KEY, 0.0))
