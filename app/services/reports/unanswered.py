"""What residents asked that the bot did not understand, grouped so similar questions count together.

SQL does the heavy part: it normalises the text (case, spaces, punctuation) and counts identical
normalised questions. Only the top groups (a bounded number, never the whole table) are then merged in
Python when their character bigrams overlap enough, which catches "社保卡怎么补办" vs "社保卡丢了怎么补办".
"""
from __future__ import annotations

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Conversation, Message
from app.services.reports._sql import in_range, scoped_resident_ids

FALLBACK_INTENT = "nlu_fallback"
CANDIDATES = 200  # normalised questions considered for merging: keeps the Python step O(200²) at worst
SIMILARITY = 0.5  # Jaccard overlap of character bigrams above which two questions are one topic
# Stripped before comparing: they change nothing about what was asked.
NOISE = (" ", "\u3000", "?", "？", "!", "！", ",", "，", ".", "。", "~", "～", "、", "…", "吗", "呢", "啊", "呀", "请问")


def normalised(column):
    """lower(trim(text)) with the NOISE characters removed, in SQL (nested REPLACE runs on both dialects)."""
    expr = func.lower(func.trim(column))
    for token in NOISE:
        expr = func.replace(expr, token, "")
    return expr


def top_unanswered(*, scope, limit: int = 20) -> list[dict]:
    key = normalised(Message.text)
    stmt = (select(key.label("key"), func.count().label("n"), func.min(Message.text).label("example"),
                   func.max(Message.created_at).label("last_at"))
            .where(in_range(Message.created_at, scope), Message.author == "resident",
                   Message.intent == FALLBACK_INTENT,
                   Message.conversation_id.in_(
                       select(Conversation.id).where(Conversation.resident_id.in_(scoped_resident_ids(scope)))))
            .group_by(key).order_by(func.count().desc(), key).limit(CANDIDATES))
    groups = [{"key": r.key, "count": r.n, "example": r.example, "last_at": r.last_at}
              for r in db.session.execute(stmt) if r.key]
    return merge_similar(groups)[:limit]


def bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def similarity(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y)


def merge_similar(groups: list[dict]) -> list[dict]:
    """Greedy clustering of count-ordered groups: each joins the first (largest) cluster it resembles."""
    clusters: list[dict] = []
    for group in groups:
        home = next((c for c in clusters if similarity(c["key"], group["key"]) >= SIMILARITY), None)
        if home is None:
            clusters.append({"key": group["key"], "question": group["example"], "count": group["count"],
                             "examples": [group["example"]], "last_at": group["last_at"]})
            continue
        home["count"] += group["count"]
        if len(home["examples"]) < 5:
            home["examples"].append(group["example"])
        home["last_at"] = max(home["last_at"], group["last_at"])
    clusters.sort(key=lambda c: (-c["count"], c["key"]))
    return [{"question": c["question"], "count": c["count"], "examples": c["examples"],
             "last_at": c["last_at"].isoformat()} for c in clusters]
