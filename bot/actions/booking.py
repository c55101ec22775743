"""The booking form: department, day, a numbered slot from the app's free slots, confirmation, booking."""
from __future__ import annotations

from datetime import date
from typing import Any, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from . import parsing
from .linli_api import ApiError, ApiUnavailable, LinliApi

SESSIONS = ("morning", "afternoon")
ANY_TIME = "any"
BOOKING_SLOTS = ("department", "date", "session", "doctor", "slot_choice", "confirm_booking", "offered_slots")

FAILURE_REASONS = {
    "daily_limit": "同一天只能约一个号。",
    "too_many_active": "您待就诊的预约太多了，请先就诊或取消一个。",
    "no_patient": "还没有登记就诊人信息，请联系居委会登记。",
    "not_found": "这个号已经没有了。",
    # Per-account caps (docs/security.md): one account may not take a clinic's whole day.
    "resident_daily_limit": "您这个账户在同一科室同一天最多约两个号。",
    "resident_too_many_active": "您这个账户（含家人）待就诊的预约太多了，请先就诊或取消一个。",
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
        # A new department makes the numbers shown earlier meaningless.
        return {"department": value, "slot_choice": None, "confirm_booking": None, "offered_slots": None}

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
        result = {"date": day.isoformat(), "slot_choice": None, "confirm_booking": None, "offered_slots": None}
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
        return {"session": _as_session(value) or ANY_TIME, "slot_choice": None, "confirm_booking": None, "offered_slots": None}

    async def validate_slot_choice(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        offers = tracker.get_slot("offered_slots") or []
        position = parsing.parse_choice(str(value), len(offers))
        if position is None:
            if offers:
                dispatcher.utter_message(response="utter_booking_bad_choice", count=len(offers))
            return {"slot_choice": None}
        return {"slot_choice": str(offers[position - 1]["id"])}

    async def validate_confirm_booking(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict
    ) -> dict[str, Any]:
        if not value:
            dispatcher.utter_message(response="utter_booking_pick_again")
            return {"confirm_booking": None, "slot_choice": None}
        try:
            appointment = await LinliApi.from_env().book(sender=tracker.sender_id, slot_id=_slot_id(tracker))
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return {"confirm_booking": None}  # asks again, so "是" retries
        except ApiError as error:
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
        return {"confirm_booking": True, "booked_appointment_id": str(appointment["id"])}


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
        dispatcher.utter_message(response="utter_ask_confirm_booking", summary=summary)
        return []


class ActionResetBooking(Action):
    """Clears the form's slots after booking or stopping, so the next booking starts fresh."""

    def name(self) -> str:
        return "action_reset_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        return [SlotSet(slot, None) for slot in BOOKING_SLOTS]
