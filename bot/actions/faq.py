"""Answers FAQ questions with the current text from the app's knowledge base."""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .linli_api import ApiError, ApiUnavailable, LinliApi


def predicted_topic(tracker: Tracker) -> Optional[str]:
    """The topic the ResponseSelector picked for the latest message ('faq/elderly_card' -> 'elderly_card')."""
    selector = tracker.latest_message.get("response_selector") or {}
    prediction = selector.get("faq") or selector.get("default") or {}
    key = (prediction.get("response") or {}).get("intent_response_key") or ""
    if not key:
        # A message given as an intent (e.g. '/faq/parking' in tests) carries the topic in its intent name.
        key = (tracker.latest_message.get("intent") or {}).get("name") or ""
    _, _, topic = key.partition("/")
    return topic or None


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        topic = predicted_topic(tracker)
        if topic is None:
            dispatcher.utter_message(response="utter_please_rephrase")
            return []
        try:
            article = await LinliApi.from_env().get_faq(topic)
        except ApiError:
            # Staff have not written this topic yet: the short text shipped with the bot still helps.
            dispatcher.utter_message(response=f"utter_faq/{topic}")
        except ApiUnavailable:
            dispatcher.utter_message(response="utter_faq_offline")
            dispatcher.utter_message(response=f"utter_faq/{topic}")
        else:
            dispatcher.utter_message(text=article["answer"])
        return []
