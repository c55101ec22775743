"""Action tests: rasa_sdk actions against a real HTTP server speaking the app's contract (no mocks)."""
from __future__ import annotations

import asyncio
from datetime import date

import pytest
from actions import parsing
from actions.appointments import ActionCancelAppointment, ActionListAppointments, ActionPickCancel, ActionPrepareCancel
from actions.booking import (
    ActionAskConfirmBooking,
    ActionAskSlotChoice,
    ActionResetBooking,
    ValidateBookingForm,
    describe_failure,
)
from actions.escalation import ActionHandoff, ActionRequestHelp
from actions.faq import ActionAnswerFaq
from actions.linli_api import ApiError, LinliApi
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from tests.conftest import SENDER, make_tracker
from tests.fake_app import slot_id

WEDNESDAY = date(2025, 3, 12)


def run(coro):
    return asyncio.run(coro)


def responses(dispatcher: CollectingDispatcher) -> list:
    return [m.get("response") for m in dispatcher.messages]


def as_dict(events: list) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


# --- parsing relative Chinese dates (jionlp), today pinned to Wednesday 2025-03-12 ---
@pytest.mark.parametrize(
    "text, expected",
    [
        ("今天", "2025-03-12"),
        ("明天", "2025-03-13"),
        ("后天", "2025-03-14"),
        ("大后天", "2025-03-15"),
        ("下周一", "2025-03-17"),
        ("周三下午", "2025-03-12"),
        ("周一", "2025-03-17"),  # this Monday passed: the next one
        ("礼拜五", "2025-03-14"),
        ("3号上午", "2025-04-03"),  # the 3rd passed this month
        ("二十号", "2025-03-20"),
        ("12月5号", "2025-12-05"),
    ],
)
def test_parse_day_understands_relative_chinese_dates(text, expected):
    assert parsing.parse_day(text, base=WEDNESDAY).isoformat() == expected


def test_parse_day_returns_none_for_text_without_a_date():
    assert parsing.parse_day("随便", base=WEDNESDAY) is None


@pytest.mark.parametrize("text, expected", [("上午", "morning"), ("早上", "morning"), ("下午", "afternoon"),
                                            ("周三下午", "afternoon"), ("明天", None), (None, None)])
def test_parse_session_reads_half_days(text, expected):
    assert parsing.parse_session(text, base=WEDNESDAY) == expected


@pytest.mark.parametrize("text, expected", [("2", 2), ("第二个", 2), ("选3", 3), ("最早那个", 1), ("最后一个", 5),
                                            ("第五个", 5), ("9", None), ("好的", None)])
def test_parse_choice_reads_digits_and_chinese_numerals(text, expected):
    assert parsing.parse_choice(text, 5) == expected


# --- FAQ ---
def faq_tracker(topic: str):
    selector = {"faq": {"response": {"intent_response_key": f"faq/{topic}", "confidence": 0.98}}}
    return make_tracker(text="老年卡怎么办", intent="faq", response_selector=selector)


def test_faq_answer_is_the_current_text_from_the_app(fake_app):
    fake_app.faq["elderly_card"] = {"topic": "elderly_card", "title": "老年卡", "answer": "staff edited answer"}
    dispatcher = CollectingDispatcher()
    run(ActionAnswerFaq().run(dispatcher, faq_tracker("elderly_card"), {}))
    assert [m["text"] for m in dispatcher.messages] == ["staff edited answer"]


def test_faq_seed_answers_cover_every_topic(fake_app):
    dispatcher = CollectingDispatcher()
    run(ActionAnswerFaq().run(dispatcher, faq_tracker("garbage_sorting"), {}))
    assert "湿垃圾" in dispatcher.messages[0]["text"]


def test_faq_topic_missing_in_app_falls_back_to_the_short_domain_text(fake_app):
    dispatcher = CollectingDispatcher()
    run(ActionAnswerFaq().run(dispatcher, faq_tracker("not_written_yet"), {}))
    assert responses(dispatcher) == ["utter_faq/not_written_yet"]


def test_faq_with_app_down_apologises_then_gives_the_short_text(app_down):
    dispatcher = CollectingDispatcher()
    run(ActionAnswerFaq().run(dispatcher, faq_tracker("parking"), {}))
    assert responses(dispatcher) == ["utter_faq_offline", "utter_faq/parking"]


# --- booking form ---
def test_date_is_normalised_and_its_half_day_kept(fake_app):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="周三下午", entities=[{"entity": "date", "value": "周三下午"}])
    result = run(ValidateBookingForm().validate_date("周三下午", dispatcher, tracker, {}))
    assert result["date"] == "2025-03-12" and result["session"] == "afternoon"
    assert result["slot_choice"] is None  # a new day invalidates an earlier pick


def test_date_without_half_day_means_any_time_unless_said_before(fake_app):
    validate = ValidateBookingForm().validate_date
    result = run(validate("明天", CollectingDispatcher(), make_tracker(text="明天"), {}))
    assert result["session"] == "any"
    result = run(validate("下周四", CollectingDispatcher(), make_tracker(slots={"session": "afternoon"}), {}))
    assert result["session"] == "afternoon"


def test_half_day_said_alone_clears_the_pick_to_relist(fake_app):
    result = run(ValidateBookingForm().validate_session("下午", CollectingDispatcher(), make_tracker(), {}))
    assert result == {"session": "afternoon", "slot_choice": None, "confirm_booking": None, "offered_slots": None}


def test_past_date_is_refused(fake_app):
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_date("昨天", dispatcher, make_tracker(), {}))
    assert result == {"date": None}
    assert responses(dispatcher) == ["utter_booking_past_date"]


def test_unknown_department_lists_the_real_ones(fake_app):
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_department("宠物科", dispatcher, make_tracker(), {}))
    assert result == {"department": None}
    assert "口腔科" in dispatcher.messages[0]["departments"]


def test_changing_department_clears_the_earlier_pick(fake_app):
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_department("外科", dispatcher, make_tracker(), {}))
    assert result["department"] == "外科" and result["slot_choice"] is None and result["offered_slots"] is None


def offer(fake_app, **slots):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots={"department": "内科", "date": "2025-03-13", **slots})
    events = run(ActionAskSlotChoice().run(dispatcher, tracker, {}))
    return dispatcher, as_dict(events)


def test_free_slots_are_offered_as_numbered_choices(fake_app):
    dispatcher, slots = offer(fake_app)
    assert responses(dispatcher) == ["utter_booking_offer"]
    assert dispatcher.messages[0]["choices"].splitlines()[0] == "1. 08:30 张伟(主任医师)"
    assert len(slots["offered_slots"]) == 5


def test_afternoon_and_doctor_narrow_the_offer(fake_app):
    _, slots = offer(fake_app, session="afternoon")
    assert [o["label"] for o in slots["offered_slots"]] == ["13:30 李强(主治医师)", "14:30 李强(主治医师)"]
    _, slots = offer(fake_app, session="any")
    assert len(slots["offered_slots"]) == 5
    _, slots = offer(fake_app, doctor="王主任")
    assert [o["doctor"] for o in slots["offered_slots"]] == ["王芳"]


def test_day_without_free_slots_asks_for_another_day(fake_app):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots={"department": "内科", "date": "2025-03-16"})  # a Sunday
    events = as_dict(run(ActionAskSlotChoice().run(dispatcher, tracker, {})))
    assert responses(dispatcher) == ["utter_booking_no_slots"] and events["date"] is None


def test_a_digit_or_chinese_ordinal_picks_the_offered_slot(fake_app):
    _, offered = offer(fake_app)
    tracker = make_tracker(text="第二个", intent="choose", slots=offered)
    result = run(ValidateBookingForm().validate_slot_choice("第二个", CollectingDispatcher(), tracker, {}))
    assert result["slot_choice"] == str(offered["offered_slots"][1]["id"])
    # Picking holds the seat while the resident confirms (tests/test_holds_waitlist.py).
    assert fake_app.holds[int(result["hold_id"])]["slot_id"] == offered["offered_slots"][1]["id"]


def test_a_number_outside_the_list_is_asked_again(fake_app):
    _, offered = offer(fake_app)
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_slot_choice("9", dispatcher, make_tracker(slots=offered), {}))
    assert result == {"slot_choice": None} and responses(dispatcher) == ["utter_booking_bad_choice"]


def chosen_tracker(fake_app, position=0, sender=SENDER):
    _, offered = offer(fake_app)
    sid = str(offered["offered_slots"][position]["id"])
    return make_tracker(intent="affirm", slots={**offered, "department": "内科", "date": "2025-03-13",
                                                "slot_choice": sid}, sender=sender), int(sid)


def test_confirmation_shows_the_chosen_slot(fake_app):
    tracker, _ = chosen_tracker(fake_app, position=2)
    dispatcher = CollectingDispatcher()
    run(ActionAskConfirmBooking().run(dispatcher, tracker, {}))
    assert dispatcher.messages[0]["summary"] == "内科 3月13日(周四) 10:00 王芳"


def test_confirming_books_the_slot_for_this_sender(fake_app):
    tracker, sid = chosen_tracker(fake_app)
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_confirm_booking(True, dispatcher, tracker, {}))
    assert result["confirm_booking"] is True and result["booked_appointment_id"] == "1"
    assert fake_app.booked[sid] == SENDER
    assert responses(dispatcher) == ["utter_booking_done"]
    assert dispatcher.messages[0]["summary"] == "内科 3月13日(周四) 08:30 张伟"


def test_slot_taken_meanwhile_offers_the_next_ones(fake_app):
    tracker, sid = chosen_tracker(fake_app)
    fake_app.take(sid)
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_confirm_booking(True, dispatcher, tracker, {}))
    assert result == {"confirm_booking": None, "slot_choice": None, "offered_slots": None}
    assert responses(dispatcher) == ["utter_booking_slot_taken"]
    _, slots = offer(fake_app)  # the form asks again: the taken slot is gone from the list
    assert sid not in [o["id"] for o in slots["offered_slots"]]


def test_refused_booking_ends_the_form_with_the_reason(fake_app):
    tracker, _ = chosen_tracker(fake_app, sender="conv-nopatient")
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_confirm_booking(True, dispatcher, tracker, {}))
    assert result["confirm_booking"] is True and result["booked_appointment_id"] is None
    assert "就诊人" in dispatcher.messages[0]["reason"]


def test_a_half_yes_at_confirmation_books_nothing_and_asks_again(fake_app):
    tracker, sid = chosen_tracker(fake_app)
    tracker.latest_message["intent"]["confidence"] = 0.78  # 那个那个, read as affirm just above the fallback
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_confirm_booking(True, dispatcher, tracker, {}))
    assert result == {"confirm_booking": None}  # the form asks again; the pick and its hold are kept
    assert not fake_app.booked and sid not in fake_app.booked
    assert responses(dispatcher) == ["utter_unclear_yes"]


def test_saying_no_at_confirmation_picks_again(fake_app):
    tracker, _ = chosen_tracker(fake_app)
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_confirm_booking(False, dispatcher, tracker, {}))
    assert result == {"confirm_booking": None, "slot_choice": None}
    assert not fake_app.booked


def test_the_form_validation_action_runs_end_to_end(fake_app):
    """Through FormValidationAction.run, as the action server calls it, with the real domain."""
    from pathlib import Path

    import yaml

    domain = yaml.safe_load((Path(__file__).parents[1] / "domain.yml").read_text(encoding="utf-8"))
    tracker = make_tracker(text="明天的内科", slots={"department": "内科", "date": "明天"},
                           entities=[{"entity": "department", "value": "内科"}, {"entity": "date", "value": "明天"}],
                           active_loop="booking_form")
    events = as_dict(run(ValidateBookingForm().run(CollectingDispatcher(), tracker, domain)))
    assert events["department"] == "内科" and events["date"] == "2025-03-13"


def test_reset_clears_the_form(fake_app):
    events = as_dict(run(ActionResetBooking().run(CollectingDispatcher(), make_tracker(), {})))
    assert set(events) >= {"department", "date", "slot_choice", "confirm_booking"} and not any(events.values())


# --- appointments ---
def book(fake_app, position, day="2025-03-13"):
    sid = slot_id(1, date.fromisoformat(day), position)
    return run(LinliApi.from_env().book(sender=SENDER, slot_id=sid))


def test_listing_without_appointments_says_so(fake_app):
    dispatcher = CollectingDispatcher()
    run(ActionListAppointments().run(dispatcher, make_tracker(intent="my_appointments"), {}))
    assert responses(dispatcher) == ["utter_no_appointments"]


def test_listing_shows_numbered_appointments(fake_app):
    book(fake_app, 0)
    book(fake_app, 3, "2025-03-14")
    dispatcher = CollectingDispatcher()
    run(ActionListAppointments().run(dispatcher, make_tracker(intent="my_appointments"), {}))
    assert dispatcher.messages[0]["items"].splitlines() == ["1. 内科 3月13日(周四) 08:30 张伟",
                                                            "2. 内科 3月14日(周五) 13:30 李强"]


def test_cancelling_the_only_appointment_asks_then_cancels(fake_app):
    appointment = book(fake_app, 0)
    dispatcher = CollectingDispatcher()
    events = as_dict(run(ActionPrepareCancel().run(dispatcher, make_tracker(intent="cancel_appointment"), {})))
    assert responses(dispatcher) == ["utter_cancel_confirm"]
    assert events["cancel_appointment_id"] == str(appointment["id"])
    assert fake_app.appointments[appointment["id"]]["status"] == "booked"  # nothing happens before "是"
    dispatcher = CollectingDispatcher()
    events = as_dict(run(ActionCancelAppointment().run(dispatcher, make_tracker(intent="affirm", slots=events), {})))
    assert responses(dispatcher) == ["utter_cancel_done"]
    assert fake_app.appointments[appointment["id"]]["status"] == "cancelled"
    assert events == {"cancel_candidates": None, "cancel_appointment_id": None}


def test_cancelling_one_of_several_lets_the_resident_pick(fake_app):
    book(fake_app, 0)
    second = book(fake_app, 1, "2025-03-14")
    dispatcher = CollectingDispatcher()
    events = as_dict(run(ActionPrepareCancel().run(dispatcher, make_tracker(intent="cancel_appointment"), {})))
    assert responses(dispatcher) == ["utter_cancel_which"] and events["cancel_appointment_id"] is None
    picked = as_dict(run(ActionPickCancel().run(
        CollectingDispatcher(), make_tracker(text="第二个", intent="choose", slots=events), {})))
    assert picked["cancel_appointment_id"] == str(second["id"])


def test_naming_the_day_narrows_what_to_cancel(fake_app):
    book(fake_app, 0)
    later = book(fake_app, 1, "2025-03-14")
    tracker = make_tracker(text="取消后天的号", intent="cancel_appointment",
                           entities=[{"entity": "date", "value": "后天"}])
    events = as_dict(run(ActionPrepareCancel().run(CollectingDispatcher(), tracker, {})))
    assert events["cancel_appointment_id"] == str(later["id"])


def test_a_half_yes_cancels_nothing_and_asks_again(fake_app):
    appointment = book(fake_app, 0)
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="那个那个", intent="affirm", confidence=0.78,
                           slots={"cancel_appointment_id": str(appointment["id"])})
    events = run(ActionCancelAppointment().run(dispatcher, tracker, {}))
    assert events == [FollowupAction("utter_cancel_take_your_time")]  # the pick is kept for the next 是
    assert fake_app.appointments[appointment["id"]]["status"] == "booked"
    assert dispatcher.messages == []


def test_cancel_past_the_deadline_is_explained(fake_app):
    appointment = book(fake_app, 0)
    fake_app.past_deadline.add(appointment["id"])
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(intent="affirm", slots={"cancel_appointment_id": str(appointment["id"])})
    run(ActionCancelAppointment().run(dispatcher, tracker, {}))
    assert responses(dispatcher) == ["utter_cancel_failed"] and "取消" in dispatcher.messages[0]["reason"]


# --- help and handoff ---
def test_help_is_raised_at_once_for_this_sender(fake_app):
    dispatcher = CollectingDispatcher()
    run(ActionRequestHelp().run(dispatcher, make_tracker(text="救命", intent="request_help"), {}))
    assert fake_app.help_calls == [{"sender": SENDER}]
    assert responses(dispatcher) == ["utter_help_coming"]


def test_help_with_app_down_tells_the_resident_to_call_120(app_down):
    dispatcher = CollectingDispatcher()
    run(ActionRequestHelp().run(dispatcher, make_tracker(text="救命", intent="request_help"), {}))
    assert responses(dispatcher) == ["utter_help_failed"]


@pytest.mark.parametrize("intent, reason", [("human_handoff", "handoff"), ("complain", "complaint"),
                                            ("nlu_fallback", "fallback")])
def test_handoff_opens_a_ticket_with_the_reason(fake_app, intent, reason):
    dispatcher = CollectingDispatcher()
    run(ActionHandoff().run(dispatcher, make_tracker(text="我要找人", intent=intent), {}))
    assert fake_app.handoffs == [{"sender": SENDER, "reason": reason, "text": "我要找人"}]
    assert responses(dispatcher) == ["utter_handoff"]


def test_client_sends_the_service_token(fake_app, monkeypatch):
    monkeypatch.setenv("BOT_SERVICE_TOKEN", "wrong")
    with pytest.raises(ApiError) as error:
        run(LinliApi.from_env().list_departments())
    assert error.value.status == 401 and error.value.code == "unauthorized"


def test_faq_with_an_unsure_topic_asks_to_rephrase_as_a_first_fallback(fake_app):
    selector = {"faq": {"response": {"intent_response_key": "faq/bulky_waste", "confidence": 0.12}}}
    tracker = make_tracker(text="那个东西怎么弄", intent="faq", response_selector=selector)
    dispatcher = CollectingDispatcher()
    events = run(ActionAnswerFaq().run(dispatcher, tracker, {}))
    assert dispatcher.messages == []
    assert events == [{"event": "followup", "timestamp": None, "name": "utter_please_rephrase"}]


def test_faq_with_an_unsure_topic_inside_the_form_just_asks_to_rephrase(fake_app):
    selector = {"faq": {"response": {"intent_response_key": "faq/bulky_waste", "confidence": 0.12}}}
    tracker = make_tracker(text="那个东西怎么弄", intent="faq", response_selector=selector, active_loop="booking_form")
    dispatcher = CollectingDispatcher()
    assert run(ActionAnswerFaq().run(dispatcher, tracker, {})) == []
    assert responses(dispatcher) == ["utter_please_rephrase"]


@pytest.mark.parametrize("code", ["resident_daily_limit", "resident_too_many_active"])
def test_the_per_account_booking_caps_are_explained_in_chinese(code):
    """The app's per-resident caps (docs/security.md) get their own words, not the generic refusal."""
    assert describe_failure(code) != describe_failure("an_unknown_code")
    assert "账户" in describe_failure(code)
