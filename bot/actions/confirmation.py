"""A yes that books or cancels must be a clear one.

DIET is confident even on fillers: 那个那个 reads as affirm at about 0.8, above the 0.7 fallback threshold, and an
affirm after 确认吗 books the held seat, after 确定要取消吗 cancels the appointment. Such a half yes asks again.
"""
from __future__ import annotations

import os

from rasa_sdk import Tracker

# A real 是/好的/对/嗯 reads at 0.95 and more; the fillers that pass the fallback threshold read below this.
CLEAR_YES_CONFIDENCE = float(os.environ.get("LINLI_CLEAR_YES_CONFIDENCE", "0.9"))


def is_unclear_yes(tracker: Tracker) -> bool:
    """The resident's latest message reads as affirm, but not clearly enough to act on."""
    intent = (tracker.latest_message or {}).get("intent") or {}
    return intent.get("name") == "affirm" and float(intent.get("confidence") or 0.0) < CLEAR_YES_CONFIDENCE
