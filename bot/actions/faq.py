"""Answers FAQ questions with the current text from the app's knowledge base."""
from __future__ import annotations

import os
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from .linli_api import ApiError, ApiUnavailable, LinliApi

# DIET is sure a vague message ("那个东西怎么弄") is *some* question; the ResponseSelector's topic
# confidence tells whether we know which one. Below this, ask to rephrase instead of guessing.
MIN_TOPIC_CONFIDENCE = float(os.environ.get("FAQ_MIN_CONFIDENCE", "0.3"))


def predicted_topic(tracker: Tracker) -> tuple[Optional[str], float]:
    """The topic the ResponseSelector picked for the latest message ('faq/elderly_card' -> 'elderly_card')
    and its confidence."""
    selector = tracker.latest_message.get("response_selector") or {}
    response = (selector.get("faq") or selector.get("default") or {}).get("response") or {}
    key, confidence = response.get("intent_response_key") or "", float(response.get("confidence") or 0.0)
    if not key:
        # A message given as an intent ('/faq/parking') carries the topic in its intent name.
        key, confidence = (tracker.latest_message.get("intent") or {}).get("name") or "", 1.0
    _, _, topic = key.partition("/")
    return topic or None, confidence


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        topic, confidence = predicted_topic(tracker)
        if topic is None or confidence < MIN_TOPIC_CONFIDENCE:
            if tracker.active_loop_name:
                dispatcher.utter_message(response="utter_please_rephrase")
                return []
            # Counts as a first fallback: a second unclear message in a row goes to a person.
            return [FollowupAction("utter_please_rephrase")]
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
