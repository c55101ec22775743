"""The booking calendar: when slots are released, when cancelling closes, when reminders are due.

Every rule is about the day in Asia/Shanghai; times are compared in UTC.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.core.config import setting

SHANGHAI = ZoneInfo("Asia/Shanghai")
SOON_REMINDER_BEFORE = timedelta(hours=2)
WECHAT_TIME = "%Y年%m月%d日 %H:%M"  # the form the `time` keywords of WeChat subscribe messages take


def _setting_time(name: str) -> time:
    hours, minutes = setting(name).split(":")
    return time(int(hours), int(minutes))


def release_days() -> int:
    return setting("BOOKING_RELEASE_DAYS")


def local_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def at_local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, SHANGHAI).astimezone(ZoneInfo("UTC"))


def released_until(now: datetime) -> date:
    """The last local day whose slots are on sale at `now` (N days ahead, once today's release time passed)."""
    today = local_day(now)
    released_today = now >= at_local(today, _setting_time("BOOKING_RELEASE_TIME"))
    return today + timedelta(days=release_days() if released_today else release_days() - 1)


def release_at(day: date) -> datetime:
    return at_local(day - timedelta(days=release_days()), _setting_time("BOOKING_RELEASE_TIME"))


def cancel_deadline(day: date) -> datetime:
    """Cancelling a visit on `day` is possible until this moment (default 15:00 the day before)."""
    return at_local(day - timedelta(days=1), _setting_time("BOOKING_CANCEL_DEADLINE"))


def evening_reminder_at(day: date) -> datetime:
    return at_local(day - timedelta(days=1), _setting_time("BOOKING_REMINDER_EVENING"))


def format_local(moment: datetime, pattern: str = "%m月%d日 %H:%M") -> str:
    return moment.astimezone(SHANGHAI).strftime(pattern)
