"""Understanding what residents type: relative Chinese dates (jionlp), half days and list choices."""
from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta
from typing import Optional
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = "一二三四五六日"
# A 周三 or 3号 that already passed this week/month means the next one, but not a date a year away.
MAX_ROLL_FORWARD = timedelta(days=31)


def today() -> date:
    """Today in Shanghai; LINLI_TODAY=YYYY-MM-DD pins it for tests and demos."""
    pinned = os.environ.get("LINLI_TODAY")
    if pinned:
        return date.fromisoformat(pinned)
    return datetime.now(SHANGHAI).date()


def _parse_span(text: str, base: date, *, future: bool) -> Optional[tuple[datetime, datetime]]:
    import jionlp  # imported lazily: it loads dictionaries and prints a banner

    try:
        result = jionlp.parse_time(text, time_base=datetime(base.year, base.month, base.day, 12), ret_future=future)
    except Exception:  # jionlp raises bare ValueErrors and others for text it cannot read
        return None
    if result.get("type") not in ("time_point", "time_span"):
        return None
    start, end = result["time"][:2]
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def parse_day(text: str, *, base: Optional[date] = None) -> Optional[date]:
    """The day meant by 今天/明天/后天/下周一/周三下午/3号上午/12月5日, or None if there is none."""
    base = base or today()
    span = _parse_span(text, base, future=False)
    if span is None:
        return None
    day = span[0].date()
    if day < base:
        later = _parse_span(text, base, future=True)
        if later and base <= later[0].date() <= base + MAX_ROLL_FORWARD:
            day = later[0].date()
    return day


def parse_session(text: Optional[str], *, base: Optional[date] = None) -> Optional[str]:
    """'morning' or 'afternoon' for 上午/早上/下午/周三下午..., None when the text names no half day."""
    if not text:
        return None
    span = _parse_span(text, base or today(), future=False)
    if span is None or span[1] - span[0] >= timedelta(hours=23):
        return None
    return "morning" if span[0].hour < 12 else "afternoon"


_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}


def parse_choice(text: str, count: int) -> Optional[int]:
    """The 1-based position picked from a numbered list: '2', '第二个', '选3', '最早那个', '最后一个'."""
    text = (text or "").strip()
    if count <= 0:
        return None
    if "最后" in text:
        return count
    match = re.search(r"\d+", text)
    if match:
        number = int(match.group())
    else:
        found = [_DIGITS[ch] for ch in text if ch in _DIGITS]
        if found:
            number = found[0]
        elif any(word in text for word in ("最早", "随便", "都行", "头一个", "哪个都")):
            number = 1
        else:
            return None
    return number if 1 <= number <= count else None


def day_label(day: date) -> str:
    """3月13日(周四), the way a date is read back to a resident."""
    return f"{day.month}月{day.day}日(周{WEEKDAYS[day.weekday()]})"


def time_label(iso: str) -> str:
    """'3月13日(周四) 09:00' for an ISO 8601 timestamp, shown in Shanghai time."""
    moment = datetime.fromisoformat(iso).astimezone(SHANGHAI)
    return f"{day_label(moment.date())} {moment:%H:%M}"
