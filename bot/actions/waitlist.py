"""The waitlist outside the booking form: where the resident stands, leaving it, accepting an offered seat.

The app offers a freed seat by a message on the resident's channel (docs/booking.md); the resident answers it
here ("确认候补"), so accepting looks the live offer up rather than relying on anything the bot said before.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import parsing
from .booking import appointment_summary, describe_failure, held_for
from .confirmation import is_unclear_yes
from .linli_api import ApiError, ApiUnavailable, LinliApi

IN_LINE = ("waiting", "offered")


def entry_label(entry: dict) -> str:
    """'3月13日(周四)内科' for a waitlist entry."""
    return f"{parsing.day_label(date.fromisoformat(entry['date']))}{entry.get('department') or ''}"


def entry_state(entry: dict) -> str:
    status = entry.get("status")
    if status == "waiting":
        return f"排第{entry['position']}位" if entry.get("position") else "排队中"
    if status == "offered" and entry.get("offer"):
        until, _ = held_for(entry["offer"]["expires_at"])
        start = parsing.time_label(entry["offer"]["start"]).split(" ")[-1]
        return f"有号了：{start}，保留到{until}，回复“确认候补”就能约上"
    return {"booked": "已约上", "lapsed": "候补的号已过保留时间", "offered": "有号了"}.get(status, status or "")


def _wanted(tracker: Tracker, entries: list[dict]) -> list[dict]:
    """The entries a named department (or day) narrows to; all of them when nothing named matches."""
    department = next(iter(tracker.get_latest_entity_values("department")), None)
    said_day = next(iter(tracker.get_latest_entity_values("date")), None)
    day = parsing.parse_day(said_day, base=parsing.today()) if said_day else None
    narrowed = [e for e in entries if (not department or e.get("department") == department)
                and (day is None or e.get("date") == day.isoformat())]
    return narrowed or entries


async def _entries(dispatcher: CollectingDispatcher, tracker: Tracker) -> Optional[list[dict]]:
    try:
        return await LinliApi.from_env().list_waitlist(sender=tracker.sender_id)
    except ApiUnavailable:
        dispatcher.utter_message(response="utter_app_unavailable")
    except ApiError as error:
        dispatcher.utter_message(response="utter_waitlist_failed", reason=describe_failure(error.code))
    return None


class ActionWaitlistStatus(Action):
    """我排到第几了: every entry from today on with its place in line or its live offer."""

    def name(self) -> str:
        return "action_waitlist_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        entries = await _entries(dispatcher, tracker)
        if entries is None:
            return []
        shown = [e for e in entries if e.get("status") in (*IN_LINE, "lapsed")]
        if not shown:
            dispatcher.utter_message(response="utter_waitlist_none")
            return []
        items = "\n".join(f"{entry_label(e)}：{entry_state(e)}" for e in shown)
        dispatcher.utter_message(response="utter_waitlist_status", items=items)
        return []


class ActionLeaveWaitlist(Action):
    """不排了: leaves the line (a live offer is declined and goes to the next in line)."""

    def name(self) -> str:
        return "action_leave_waitlist"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        entries = await _entries(dispatcher, tracker)
        if entries is None:
            return []
        in_line = _wanted(tracker, [e for e in entries if e.get("status") in IN_LINE])
        if not in_line:
            dispatcher.utter_message(response="utter_waitlist_none")
            return []
        if len(in_line) > 1:
            items = "\n".join(f"{entry_label(e)}：{entry_state(e)}" for e in in_line)
            dispatcher.utter_message(response="utter_waitlist_leave_which", items=items)
            return []
        try:
            await LinliApi.from_env().leave_waitlist(sender=tracker.sender_id, entry_id=in_line[0]["id"])
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return []
        except ApiError as error:
            dispatcher.utter_message(response="utter_waitlist_failed", reason=describe_failure(error.code))
            return []
        dispatcher.utter_message(response="utter_waitlist_left", entry=entry_label(in_line[0]))
        return []


class ActionAcceptOffer(Action):
    """确认候补: books the seat the waitlist offered; a lapsed offer gets a clear refusal, nothing booked."""

    def name(self) -> str:
        return "action_accept_offer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        entries = await _entries(dispatcher, tracker)
        if entries is None:
            return []
        offered = _wanted(tracker, [e for e in entries if e.get("status") == "offered"])
        # An offer that ran out shows as `lapsed` (or still `offered` until the app's sweep ends it).
        lapsed = [e for e in entries if e.get("status") == "lapsed"]
        if not offered:
            if lapsed:
                dispatcher.utter_message(response="utter_offer_lapsed", entry=entry_label(lapsed[0]))
            else:
                dispatcher.utter_message(response="utter_offer_none")
            return []
        entry = offered[0]
        if is_unclear_yes(tracker):  # a half yes opening a conversation books nothing; 确认候补 is a clear one
            dispatcher.utter_message(response="utter_offer_unclear_yes", entry=entry_label(entry))
            return []
        try:
            appointment = await LinliApi.from_env().accept_offer(sender=tracker.sender_id, entry_id=entry["id"])
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return []
        except ApiError as error:
            if error.code in ("offer_lapsed", "not_in_line"):
                dispatcher.utter_message(response="utter_offer_lapsed", entry=entry_label(entry))
            elif error.code == "no_offer":
                dispatcher.utter_message(response="utter_offer_none")
            else:
                dispatcher.utter_message(response="utter_booking_failed", reason=describe_failure(error.code))
            return []
        summary = appointment_summary(appointment["department"], appointment["start"], appointment.get("doctor"))
        dispatcher.utter_message(response="utter_booking_done", summary=summary,
                                 patient=appointment.get("patient_name") or "")
        return []
