"""A resident's message in and the answer out, on every channel: inbound dedup, the bot's turn, late
answers, the WeChat menu, and handing a conversation to a person.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.conversations.deferred import NotQueued, receive_later
from app.services.conversations.handoff import SUBJECTS, hand_over
from app.services.conversations.inbound import HANDED_OVER, Outcome, receive
from app.services.conversations.late_answers import (
    LATE_ANSWER_GRACE,
    LATE_REPLY_KEPT,
    hand_over_lost_late_answers,
    queue_late_reply,
)
from app.services.conversations.orphans import take_over_orphaned_turns
from app.services.conversations.replies import APOLOGY, Turn
