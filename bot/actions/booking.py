"""The booking form: department, day, a numbered slot from the app's free slots, held while the resident
confirms, then booked; a day with no seat left offers the department's waitlist instead."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from . import parsing
from .confirmation import is_unclear_yes
from .linli_api import ApiError, ApiUnavailable, LinliApi

SESSIONS = ("morning", "afternoon")
ANY_TIME = "any"
BOOKING_SLOTS = ("department", "date", "session", "doctor", "slot_choice", "confirm_booking", "offered_slots",
                 "hold_id", "hold_until", "day_full", "join_waitlist")
# A full day: the form asks "要排队等候吗？" instead of listing slots, and ends once the resident answered yes.
WAITLIST_SLOTS = ["department", "date", "join_waitlist"]
WAITLIST_ONLY = ("join_waitlist",)

FAILURE_REASONS = {
    "daily_limit": "同一天只能约一个号。",
    "too_many_active": "您待就诊的预约太多了，请先就诊或取消一个。",
    "no_patient": "还没有登记就诊人信息，请联系居委会登记。",
    "not_found": "这个号已经没有了。",
    # Per-account caps (docs/security.md): one account may not take a clinic's whole day.
    "resident_daily_limit": "您这个账户在同一科室同一天最多约两个号。",
    "resident_too_many_active": "您这个账户（含家人）待就诊的预约太多了，请先就诊或取消一个。",
    "booking_suspended": "近期爽约次数较多，预约功能暂停中，请联系社区卫生服务中心。",
    "already_holding": "您在这个科室这一天已经保留着一个号（或候补到的号），请先确认或放弃它。",
    "slot_in_past": "这个号的时间已经过了。",
    "slot_not_released": "这个号还没有开放预约。",
}


def describe_failure(code: str) -> str:
    return FAILURE_REASONS.get(code, "系统没有接受这个预约，可以说“转人工”问工作人员。")


def offer_label(offer: dict) -> str:
    """'09:00 张伟(主任医师)' within a day, for the numbered list."""
    start = parsing.time_label(offer["start"]).split(" ")[-1]
    title = f"({offer['doctor_title']})" if offer.get("doctor_title") else ""
    return f"{start} {offer.get('doctor') or ''}{title}".strip()


def appointment_summary(department: str, start: str, doctor: Optional[str]) -> str:
    return f"{department} {parsing.time_label(start)} {doctor or ''}".strip()


def _latest_entity_text(tracker: Tracker, entity: str) -> Optional[str]:
    values = list(tracker.get_latest_entity_values(entity))
    return values[-1] if values else None


def _matches_doctor(slot: dict, wanted: Optional[str]) -> bool:
    if not wanted:
        return True
    # Residents say 张医生 / 王主任 / 李大夫: the surname is what they know.
    surname = wanted.rstrip("医生大夫主任教授老师")[:1]
    return (slot.get("doctor") or "").startswith(surname)


class ValidateBookingForm(FormValidationAction):
    def name(self) -> str:
        return "validate_booking_form"

    async def validate_department(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        try:
            known = [d["name"] for d in await LinliApi.from_env().list_departments()]
        except (ApiError, ApiUnavailable):
            known = None  # cannot check now; the slot list will show whether it exists
        if known is not None and value not in known:
            dispatcher.utter_message(
                response="utter_booking_invalid_department", department=value, departments="、".join(known)
            )
            return {"department": None}
        # A new department makes the numbers shown earlier meaningless, and the seat held for them is given back.
        return {"department": value, "slot_choice": None, "confirm_booking": None, "offered_slots": None,
                **await _release_hold(tracker)}

    async def validate_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        base = parsing.today()
        day = parsing.parse_day(str(value), base=base)
        if day is None:
            dispatcher.utter_message(response="utter_booking_bad_date")
            return {"date": None}
        if day < base:
            dispatcher.utter_message(response="utter_booking_past_date", day=parsing.day_label(day))
            return {"date": None}
        result = {"date": day.isoformat(), "slot_choice": None, "confirm_booking": None, "offered_slots": None,
                  **await _release_hold(tracker)}
        if not _latest_entity_text(tracker, "time"):
            # No separate 上午/下午: take the half day inside the date ("周三下午"), else keep the one said
            # earlier, else any time of day. Filling session here means the form never has to ask for it.
            said = parsing.parse_session(str(value), base=base) or _as_session(tracker.get_slot("session"))
            result["session"] = said or ANY_TIME
        return result

    async def validate_session(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        # A half day said on its own ("下午的") while the list is shown re-lists for that half day.
        return {"session": _as_session(value) or ANY_TIME, "slot_choice": None, "confirm_booking": None,
                "offered_slots": None, **await _release_hold(tracker)}

    async def validate_slot_choice(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        offers = tracker.get_slot("offered_slots") or []
        position = parsing.parse_choice(str(value), len(offers))
        if position is None:
            if offers:
                dispatcher.utter_message(response="utter_booking_bad_choice", count=len(offers))
            return {"slot_choice": None}
        chosen = offers[position - 1]
        released = await _release_hold(tracker)  # a seat still held from an earlier pick goes back first
        try:
            hold = await LinliApi.from_env().hold(sender=tracker.sender_id, slot_id=chosen["id"])
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return {"slot_choice": None, **released}
        except ApiError as error:
            if error.code == "slot_taken":
                dispatcher.utter_message(response="utter_booking_slot_taken")
                return {"slot_choice": None, "offered_slots": None, **released}
            # Caps, suspension, a seat held elsewhere: picking another slot would be refused the same way.
            dispatcher.utter_message(response="utter_booking_failed", reason=describe_failure(error.code))
            return {"slot_choice": str(chosen["id"]), "confirm_booking": True, "booked_appointment_id": None,
                    **released}
        return {"slot_choice": str(chosen["id"]), "hold_id": str(hold["id"]), "hold_until": hold["expires_at"]}

    async def validate_confirm_booking(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        if not value:
            dispatcher.utter_message(response="utter_booking_pick_again")
            return {"confirm_booking": None, "slot_choice": None, **await _release_hold(tracker)}
        if is_unclear_yes(tracker):  # the form asks its question again; the seat stays held
            dispatcher.utter_message(response="utter_unclear_yes")
            return {"confirm_booking": None}
        api, hold_id = LinliApi.from_env(), tracker.get_slot("hold_id")
        try:
            if hold_id:
                appointment = await api.confirm_hold(sender=tracker.sender_id, hold_id=hold_id)
            else:  # a pick made before holds existed (a conversation older than this action server)
                appointment = await api.book(sender=tracker.sender_id, slot_id=_slot_id(tracker))
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return {"confirm_booking": None}  # asks again, so "是" retries
        except ApiError as error:
            if error.code in ("hold_expired", "hold_released"):
                # The held time ran out: nothing was booked; list what is free now.
                dispatcher.utter_message(response="utter_booking_hold_expired")
                return {"confirm_booking": None, "slot_choice": None, "offered_slots": None,
                        "hold_id": None, "hold_until": None}
            if error.code == "slot_taken":
                # Someone else was faster: clearing the pick lists the next free slots again.
                dispatcher.utter_message(response="utter_booking_slot_taken")
                return {"confirm_booking": None, "slot_choice": None, "offered_slots": None}
            dispatcher.utter_message(response="utter_booking_failed", reason=describe_failure(error.code))
            return {"confirm_booking": True, "booked_appointment_id": None}
        summary = appointment_summary(appointment["department"], appointment["start"], appointment.get("doctor"))
        dispatcher.utter_message(
            response="utter_booking_done", summary=summary, patient=appointment.get("patient_name") or ""
        )
        result = {"confirm_booking": True, "booked_appointment_id": str(appointment["id"])}
        return {**result, "hold_id": None, "hold_until": None} if hold_id else result

    async def validate_join_waitlist(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        department, day = tracker.get_slot("department"), tracker.get_slot("date")
        label = parsing.day_label(date.fromisoformat(day))
        another_day = {"date": None, "day_full": None, "join_waitlist": None}
        if not value:
            dispatcher.utter_message(response="utter_waitlist_not_joined")
            return another_day
        try:
            entry = await LinliApi.from_env().join_waitlist(sender=tracker.sender_id, department=department, date=day)
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return {"join_waitlist": None}  # asks again
        except ApiError as error:
            if error.code == "already_waiting":
                # Not an error for the resident: say where they stand.
                entry = await _entry_of(tracker.sender_id, department, day)
                dispatcher.utter_message(response="utter_waitlist_already", day=label, department=department,
                                         position=_position_text(entry))
                return {"join_waitlist": True}
            if error.code == "seats_available":
                # A seat came free since the list was empty: show it.
                dispatcher.utter_message(response="utter_waitlist_seats_free")
                return {"day_full": None, "join_waitlist": None, "slot_choice": None, "offered_slots": None}
            if error.code == "no_slots":  # no clinic that day at all
                dispatcher.utter_message(response="utter_waitlist_no_slots", day=label, department=department)
                return another_day
            if error.code == "slot_not_released":
                dispatcher.utter_message(response="utter_waitlist_slot_not_released", day=label, department=department)
                return another_day
            dispatcher.utter_message(response="utter_waitlist_failed", reason=describe_failure(error.code))
            return {"join_waitlist": True}
        dispatcher.utter_message(response="utter_waitlist_joined", day=label, department=department,
                                 position=_position_text(entry))
        return {"join_waitlist": True}

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> list[str]:
        if tracker.get_slot("day_full"):
            return WAITLIST_SLOTS
        return [slot for slot in domain_slots if slot not in WAITLIST_ONLY]

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> list[dict[str, Any]]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        changed = {e["name"] for e in events if e.get("event") == "slot"}
        if changed & {"department", "date"}:
            # Whether the whole day is full decides the next question (slots, or the waitlist), so it is known
            # before the form asks; a half day without slots is only "another time?" (action_ask_slot_choice).
            full = await _day_is_full(tracker)
            tracker.slots.update({"day_full": full, "join_waitlist": None})
            events += [SlotSet("day_full", full), SlotSet("join_waitlist", None)]
        return events


async def _day_is_full(tracker: Tracker) -> Optional[bool]:
    department, day = tracker.get_slot("department"), tracker.get_slot("date")
    if not (department and day):
        return None
    try:
        slots = await LinliApi.from_env().list_slots(sender=tracker.sender_id, department=department, date=day, limit=1)
    except (ApiError, ApiUnavailable):
        return None  # the slot list will say what is wrong
    return True if not slots else None


async def _release_hold(tracker: Tracker) -> dict[str, Any]:
    """Gives the seat held for this conversation back; {} when none is held."""
    hold_id = tracker.get_slot("hold_id")
    if not hold_id:
        return {}
    try:
        await LinliApi.from_env().release_hold(sender=tracker.sender_id, hold_id=hold_id)
    except (ApiError, ApiUnavailable):
        pass  # the hold runs out by itself within minutes
    return {"hold_id": None, "hold_until": None}


async def _entry_of(sender: str, department: str, day: str) -> Optional[dict]:
    try:
        entries = await LinliApi.from_env().list_waitlist(sender=sender)
    except (ApiError, ApiUnavailable):
        return None
    return next((e for e in entries if e.get("department") == department and e.get("date") == day
                 and e.get("status") in ("waiting", "offered")), None)


def _position_text(entry: Optional[dict]) -> str:
    if entry and entry.get("status") == "offered":
        return "已经轮到您了，请回复“确认候补”"
    if entry and entry.get("position"):
        return f"现在排第{entry['position']}位"
    return "正在排队"


def held_for(expires_at: Optional[str], now: Optional[datetime] = None) -> tuple[str, int]:
    """('09:05', 5): until when a seat is held and for how many more minutes (at least 1)."""
    until = datetime.fromisoformat(expires_at)
    now = now or datetime.now(timezone.utc)
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    return parsing.time_label(expires_at).split(" ")[-1], minutes


def _as_session(value: Any) -> Optional[str]:
    """'morning'/'afternoon' for a stored key or the resident's words (下午), None for any time of day."""
    if value in SESSIONS:
        return value
    return parsing.parse_session(str(value)) if value and value != ANY_TIME else None


def _session(tracker: Tracker) -> Optional[str]:
    """The half day asked for, as the app's `session` parameter (None: any time of day)."""
    return _as_session(tracker.get_slot("session"))


def _slot_id(tracker: Tracker) -> Any:
    raw = tracker.get_slot("slot_choice")
    return int(raw) if str(raw).isdigit() else raw


class ActionAskSlotChoice(Action):
    """Lists the free slots of the chosen day as numbered choices (fresh from the app each time)."""

    def name(self) -> str:
        return "action_ask_slot_choice"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        department, day = tracker.get_slot("department"), tracker.get_slot("date")
        try:
            slots = await LinliApi.from_env().list_slots(
                sender=tracker.sender_id, department=department, date=day, session=_session(tracker)
            )
        except (ApiError, ApiUnavailable):
            dispatcher.utter_message(response="utter_app_unavailable")
            return [SlotSet("offered_slots", None)]
        wanted_doctor = tracker.get_slot("doctor")
        slots = [s for s in slots if _matches_doctor(s, wanted_doctor)] or slots
        label = parsing.day_label(date.fromisoformat(day))
        if not slots:
            dispatcher.utter_message(response="utter_booking_no_slots", day=label, department=department)
            return [SlotSet("date", None), SlotSet("offered_slots", None)]
        offers = [
            {"id": s["id"], "department": s.get("department") or department, "start": s["start"],
             "doctor": s.get("doctor"), "label": offer_label(s)}
            for s in slots
        ]
        choices = "\n".join(f"{i}. {o['label']}" for i, o in enumerate(offers, start=1))
        dispatcher.utter_message(response="utter_booking_offer", day=label, department=department, choices=choices)
        return [SlotSet("offered_slots", offers)]


class ActionAskConfirmBooking(Action):
    def name(self) -> str:
        return "action_ask_confirm_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        chosen = str(tracker.get_slot("slot_choice"))
        offer = next((o for o in tracker.get_slot("offered_slots") or [] if str(o["id"]) == chosen), None)
        if offer is None:
            summary = f"{tracker.get_slot('department')} {tracker.get_slot('date')}"
        else:
            summary = appointment_summary(offer["department"], offer["start"], offer.get("doctor"))
        if tracker.get_slot("hold_until"):
            until, minutes = held_for(tracker.get_slot("hold_until"))
            dispatcher.utter_message(response="utter_ask_confirm_hold", summary=summary, until=until, minutes=minutes)
        else:
            dispatcher.utter_message(response="utter_ask_confirm_booking", summary=summary)
        return []


class ActionAskJoinWaitlist(Action):
    """A full day: offers the department's waitlist for it ("要排队等候吗？")."""

    def name(self) -> str:
        return "action_ask_join_waitlist"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        label = parsing.day_label(date.fromisoformat(tracker.get_slot("date")))
        dispatcher.utter_message(response="utter_booking_day_full", day=label,
                                 department=tracker.get_slot("department"))
        return []


class ActionResetBooking(Action):
    """Clears the form's slots after booking or stopping, so the next booking starts fresh."""

    def name(self) -> str:
        return "action_reset_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        await _release_hold(tracker)  # stopped or refused with a seat still held: give it back now
        return [SlotSet(slot, None) for slot in BOOKING_SLOTS]
