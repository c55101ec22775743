"""Listing and cancelling the resident's appointments (cancelling always asks for a confirmation)."""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from . import parsing
from .booking import appointment_summary
from .confirmation import is_unclear_yes
from .linli_api import ApiError, ApiUnavailable, LinliApi

CANCEL_FAILURES = {
    "past_deadline": "已经过了可以取消的时间，请直接联系医院。",
    "not_found": "没有找到这个预约。",
}


def summarize(appointment: dict) -> str:
    return appointment_summary(appointment["department"], appointment["start"], appointment.get("doctor"))


def numbered(appointments: list[dict]) -> str:
    return "\n".join(f"{i}. {summarize(a)}" for i, a in enumerate(appointments, start=1))


def _narrow(appointments: list[dict], tracker: Tracker) -> list[dict]:
    """Keeps the appointments matching a department or day the resident named ('取消明天的内科')."""
    narrowed = appointments
    departments = set(tracker.get_latest_entity_values("department"))
    if departments:
        narrowed = [a for a in narrowed if a["department"] in departments]
    days = {parsing.parse_day(text) for text in tracker.get_latest_entity_values("date")} - {None}
    if days:
        narrowed = [a for a in narrowed if parsing.time_label(a["start"]).startswith(tuple(parsing.day_label(d) for d in days))]
    return narrowed or appointments


def _reset() -> list[dict[str, Any]]:
    return [SlotSet("cancel_candidates", None), SlotSet("cancel_appointment_id", None)]


class ActionListAppointments(Action):
    def name(self) -> str:
        return "action_list_appointments"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        try:
            appointments = await LinliApi.from_env().list_appointments(sender=tracker.sender_id)
        except (ApiError, ApiUnavailable):
            dispatcher.utter_message(response="utter_app_unavailable")
            return []
        if not appointments:
            dispatcher.utter_message(response="utter_no_appointments")
        else:
            dispatcher.utter_message(response="utter_appointments", items=numbered(appointments))
        return []


class ActionPrepareCancel(Action):
    """Finds what to cancel: asks to confirm a single match, or lists several to pick from."""

    def name(self) -> str:
        return "action_prepare_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        try:
            appointments = await LinliApi.from_env().list_appointments(sender=tracker.sender_id)
        except (ApiError, ApiUnavailable):
            dispatcher.utter_message(response="utter_app_unavailable")
            return _reset()
        if not appointments:
            dispatcher.utter_message(response="utter_no_appointments")
            return _reset()
        candidates = _narrow(appointments, tracker)
        if len(candidates) == 1:
            dispatcher.utter_message(response="utter_cancel_confirm", summary=summarize(candidates[0]))
            return [SlotSet("cancel_candidates", candidates), SlotSet("cancel_appointment_id", str(candidates[0]["id"]))]
        dispatcher.utter_message(response="utter_cancel_which", items=numbered(candidates))
        return [SlotSet("cancel_candidates", candidates), SlotSet("cancel_appointment_id", None)]


class ActionPickCancel(Action):
    def name(self) -> str:
        return "action_pick_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        candidates = tracker.get_slot("cancel_candidates") or []
        position = parsing.parse_choice(tracker.latest_message.get("text") or "", len(candidates))
        if position is None:
            if candidates:
                dispatcher.utter_message(response="utter_booking_bad_choice", count=len(candidates))
            else:
                dispatcher.utter_message(response="utter_no_appointments")
            return [SlotSet("cancel_appointment_id", None)]
        chosen = candidates[position - 1]
        dispatcher.utter_message(response="utter_cancel_confirm", summary=summarize(chosen))
        return [SlotSet("cancel_appointment_id", str(chosen["id"]))]


class ActionCancelAppointment(Action):
    def name(self) -> str:
        return "action_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        appointment_id: Optional[str] = tracker.get_slot("cancel_appointment_id")
        if appointment_id and is_unclear_yes(tracker):
            # Ask again and keep what was picked: the rules after utter_cancel_take_your_time take the next answer.
            return [FollowupAction("utter_cancel_take_your_time")]
        if not appointment_id:
            dispatcher.utter_message(response="utter_no_appointments")
            return _reset()
        try:
            cancelled = await LinliApi.from_env().cancel_appointment(
                sender=tracker.sender_id, appointment_id=appointment_id
            )
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_app_unavailable")
            return _reset()
        except ApiError as error:
            reason = CANCEL_FAILURES.get(error.code, "系统没有接受取消，可以说“转人工”问工作人员。")
            dispatcher.utter_message(response="utter_cancel_failed", reason=reason)
            return _reset()
        dispatcher.utter_message(response="utter_cancel_done", summary=summarize(cancelled))
        return _reset()


class ActionResetCancel(Action):
    def name(self) -> str:
        return "action_reset_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        return _reset()
