"""Cutting replies into SMS parts that each fit one segment, split where a sentence ends.

Any character outside the GSM 7-bit alphabet (every Chinese character) makes an SMS UCS-2: one
segment holds 70 characters, 67 when a message is split. Sending each part as its own one-segment SMS
keeps every part readable even on phones that do not reassemble concatenated messages.
"""
from __future__ import annotations

import re

UCS2_PART = 67
GSM_PART = 153
MAX_PARTS = 5
POINTER = "更多内容请在微信公众号“邻里”查看。"

# GSM 03.38 basic alphabet; the extension table's characters cost two septets each.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;…\n])|(?<=[.](?=\s))")
_CLAUSE_END = re.compile(r"(?<=[，、,：:])")


def is_gsm(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def part_limit(text: str) -> int:
    return GSM_PART if is_gsm(text) else UCS2_PART


def units(text: str, *, gsm: bool) -> int:
    """Length as the network counts it: septets for GSM, UTF-16 code units for UCS-2 (an emoji is 2)."""
    if gsm:
        return sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def segment(text: str, *, max_parts: int = MAX_PARTS) -> list[str]:
    """Parts of at most one segment each, cut at sentence ends; beyond `max_parts` the tail is replaced
    by a pointer to the official account."""
    text = re.sub(r"[ \t]+", " ", (text or "").strip())
    if not text:
        return []
    gsm = is_gsm(text)  # each part is its own SMS, so the (Chinese) pointer part does not change the others
    limit = GSM_PART if gsm else UCS2_PART
    parts = _pack(_pieces(text, limit, gsm), limit, gsm)
    if len(parts) <= max_parts:
        return parts
    kept = parts[:max_parts - 1]
    return kept + [POINTER]


def shorten(text: str, *, max_parts: int = MAX_PARTS) -> str:
    """One message body that fits `max_parts` concatenated segments (for a single multi-part SMS)."""
    return "".join(segment(text, max_parts=max_parts))


def _pieces(text: str, limit: int, gsm: bool) -> list[str]:
    """Sentences, each cut further at clauses, then by force, until every piece fits a part."""
    out: list[str] = []
    for sentence in filter(None, _SENTENCE_END.split(text)):
        if units(sentence, gsm=gsm) <= limit:
            out.append(sentence)
            continue
        for clause in filter(None, _CLAUSE_END.split(sentence)):
            while units(clause, gsm=gsm) > limit:
                cut = _fitting_prefix(clause, limit, gsm)
                out.append(clause[:cut])
                clause = clause[cut:]
            if clause:
                out.append(clause)
    return out


def _fitting_prefix(text: str, limit: int, gsm: bool) -> int:
    n = 0
    used = 0
    for ch in text:
        cost = units(ch, gsm=gsm)
        if used + cost > limit:
            break
        used += cost
        n += 1
    return max(n, 1)


def _pack(pieces: list[str], limit: int, gsm: bool) -> list[str]:
    parts: list[str] = []
    current = ""
    for piece in pieces:
        if current and units(current + piece, gsm=gsm) > limit:
            parts.append(current.strip())
            current = piece.lstrip()
        else:
            current += piece
    if current.strip():
        parts.append(current.strip())
    return [p for p in parts if p]
