"""Getting a person involved: one-key help alerts and handing the conversation to staff."""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .linli_api import ApiError, ApiUnavailable, LinliApi

# Why a ticket is opened, as the app's contract names it.
HANDOFF_REASONS = {"human_handoff": "handoff", "complain": "complaint", "nlu_fallback": "fallback"}


class ActionRequestHelp(Action):
    """Raises the alert before saying anything else: in an emergency no question comes first."""

    def name(self) -> str:
        return "action_request_help"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        try:
            await LinliApi.from_env().raise_help(sender=tracker.sender_id)
        except (ApiError, ApiUnavailable):
            dispatcher.utter_message(response="utter_help_failed")
        else:
            dispatcher.utter_message(response="utter_help_coming")
        return []


class ActionHandoff(Action):
    """Opens a ticket; from then on the app routes this conversation to staff until it is resolved."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        reason = HANDOFF_REASONS.get(intent, "handoff")
        try:
            await LinliApi.from_env().handoff(
                sender=tracker.sender_id, reason=reason, text=tracker.latest_message.get("text") or ""
            )
        except (ApiError, ApiUnavailable):
            dispatcher.utter_message(response="utter_handoff_failed")
        else:
            dispatcher.utter_message(response="utter_handoff")
        return []
