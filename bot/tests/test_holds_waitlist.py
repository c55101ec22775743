"""Held slots and the waitlist in the bot (issue 23): the actions against a real HTTP server speaking the app's
contract (tests/fake_app.py, the rules of docs/booking.md "Held seats and the waitlist"), no mocks."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml
from actions.booking import (
    ActionAskConfirmBooking,
    ActionAskJoinWaitlist,
    ActionAskSlotChoice,
    ActionResetBooking,
    ValidateBookingForm,
    held_for,
)
from actions.waitlist import ActionAcceptOffer, ActionLeaveWaitlist, ActionWaitlistStatus
from rasa_sdk.executor import CollectingDispatcher

from tests.conftest import SENDER, make_tracker
from tests.fake_app import slot_id

THURSDAY = date(2025, 3, 13)  # tomorrow, with today pinned to Wednesday 2025-03-12
SUNDAY = "2025-03-16"
DOMAIN = yaml.safe_load((Path(__file__).parents[1] / "domain.yml").read_text(encoding="utf-8"))


def run(coro):
    return asyncio.run(coro)


def responses(dispatcher: CollectingDispatcher) -> list:
    return [m.get("response") for m in dispatcher.messages]


def as_dict(events: list) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def texts(response: str) -> str:
    return DOMAIN["responses"][response][0]["text"]


def offered_slots(fake_app) -> list[dict]:
    tracker = make_tracker(slots={"department": "内科", "date": THURSDAY.isoformat()})
    return as_dict(run(ActionAskSlotChoice().run(CollectingDispatcher(), tracker, {})))["offered_slots"]


def pick(fake_app, text="1", sender=SENDER, slots=None):
    """The resident answers the numbered list: returns (dispatcher, the form's slots after validation)."""
    offers = offered_slots(fake_app)
    dispatcher = CollectingDispatcher()
    base = {"department": "内科", "date": THURSDAY.isoformat(), "offered_slots": offers, **(slots or {})}
    tracker = make_tracker(text=text, intent="choose", slots=base, sender=sender)
    result = run(ValidateBookingForm().validate_slot_choice(text, dispatcher, tracker, {}))
    return dispatcher, {**base, **result}


def confirm(slots, value=True, sender=SENDER):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(intent="affirm" if value else "deny", slots=slots, sender=sender)
    result = run(ValidateBookingForm().validate_confirm_booking(value, dispatcher, tracker, {}))
    return dispatcher, result


# --- a picked slot is held while the resident confirms ---
def test_picking_a_slot_holds_its_seat_and_says_for_how_long(fake_app):
    _, slots = pick(fake_app, "2")
    hold = fake_app.holds[int(slots["hold_id"])]
    assert hold["slot_id"] == slot_id(1, THURSDAY, 1) and hold["sender"] == SENDER and hold["status"] == "held"
    assert slot_id(1, THURSDAY, 1) not in [o["id"] for o in offered_slots(fake_app)]  # nobody else sees it free

    dispatcher = CollectingDispatcher()
    run(ActionAskConfirmBooking().run(dispatcher, make_tracker(slots=slots), {}))
    assert responses(dispatcher) == ["utter_ask_confirm_hold"]
    message = dispatcher.messages[0]
    assert message["minutes"] == 5 and message["summary"] == "内科 3月13日(周四) 09:00 张伟"
    assert message["until"] == held_for(slots["hold_until"])[0]
    assert "保留" in texts("utter_ask_confirm_hold") and "确认吗" in texts("utter_ask_confirm_hold")


def test_held_for_counts_whole_minutes_left():
    now = datetime(2025, 3, 12, 1, 0, tzinfo=timezone.utc)
    assert held_for("2025-03-12T09:05:00+08:00", now=now) == ("09:05", 5)
    assert held_for("2025-03-12T09:00:30+08:00", now=now) == ("09:00", 1)


def test_confirming_books_the_held_seat(fake_app):
    _, slots = pick(fake_app)
    dispatcher, result = confirm(slots)
    assert responses(dispatcher) == ["utter_booking_done"]
    assert result["confirm_booking"] is True and result["hold_id"] is None
    hold = fake_app.holds[int(slots["hold_id"])]
    assert hold["status"] == "confirmed"
    assert fake_app.appointments[int(result["booked_appointment_id"])]["slot_id"] == hold["slot_id"]


def test_an_expired_hold_is_refused_at_confirmation_and_slots_are_offered_again(fake_app):
    _, slots = pick(fake_app)
    fake_app.expire(int(slots["hold_id"]))
    dispatcher, result = confirm(slots)
    assert responses(dispatcher) == ["utter_booking_hold_expired"]
    assert "保留时间已过" in texts("utter_booking_hold_expired")
    assert result == {"confirm_booking": None, "slot_choice": None, "offered_slots": None,
                      "hold_id": None, "hold_until": None}
    assert not fake_app.appointments  # nothing booked
    assert slot_id(1, THURSDAY, 0) in [o["id"] for o in offered_slots(fake_app)]  # the seat is free again


def test_saying_no_at_confirmation_releases_the_hold(fake_app):
    _, slots = pick(fake_app)
    dispatcher, result = confirm(slots, value=False)
    assert responses(dispatcher) == ["utter_booking_pick_again"]
    assert result == {"confirm_booking": None, "slot_choice": None, "hold_id": None, "hold_until": None}
    assert fake_app.holds[int(slots["hold_id"])]["status"] == "released"


def test_picking_another_slot_releases_the_first_hold(fake_app):
    _, first = pick(fake_app, "1")
    _, second = pick(fake_app, "2", slots={"hold_id": first["hold_id"]})
    assert fake_app.holds[int(first["hold_id"])]["status"] == "released"
    assert fake_app.holds[int(second["hold_id"])]["status"] == "held"


def test_changing_the_day_releases_the_hold(fake_app):
    _, slots = pick(fake_app)
    tracker = make_tracker(text="改到后天", slots=slots)
    result = run(ValidateBookingForm().validate_date("后天", CollectingDispatcher(), tracker, {}))
    assert result["date"] == "2025-03-14" and result["hold_id"] is None
    assert fake_app.holds[int(slots["hold_id"])]["status"] == "released"


def test_stopping_the_form_releases_the_hold(fake_app):
    _, slots = pick(fake_app)
    events = as_dict(run(ActionResetBooking().run(CollectingDispatcher(), make_tracker(slots=slots), {})))
    assert events["hold_id"] is None
    assert fake_app.holds[int(slots["hold_id"])]["status"] == "released"


def test_a_slot_held_by_someone_else_meanwhile_lists_the_next_ones(fake_app):
    offers = offered_slots(fake_app)
    run(ValidateBookingForm().validate_slot_choice(
        "1", CollectingDispatcher(), make_tracker(intent="choose", slots={"offered_slots": offers}, sender="conv-7"),
        {}))
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(intent="choose", slots={"offered_slots": offers})
    result = run(ValidateBookingForm().validate_slot_choice("1", dispatcher, tracker, {}))
    assert responses(dispatcher) == ["utter_booking_slot_taken"]
    assert result == {"slot_choice": None, "offered_slots": None}


def test_a_seat_already_held_elsewhere_that_day_ends_the_form_with_the_reason(fake_app):
    _, slots = pick(fake_app, "1")  # e.g. a hold from an earlier conversation, still running
    dispatcher, result = pick(fake_app, "2")
    assert responses(dispatcher) == ["utter_booking_failed"]
    assert "保留" in dispatcher.messages[0]["reason"]
    assert result["confirm_booking"] is True and result.get("hold_id") is None


def test_app_down_when_picking_answers_politely(fake_app, monkeypatch):
    offers = offered_slots(fake_app)
    monkeypatch.setenv("LINLI_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    dispatcher = CollectingDispatcher()
    result = run(ValidateBookingForm().validate_slot_choice(
        "1", dispatcher, make_tracker(intent="choose", slots={"offered_slots": offers}), {}))
    assert responses(dispatcher) == ["utter_app_unavailable"] and result == {"slot_choice": None}


# --- a full day offers the waitlist ("要排队等候吗？") ---
def form_run(fake_app, text, slots, entities=(), intent="inform"):
    tracker = make_tracker(text=text, intent=intent, slots=slots, entities=list(entities), active_loop="booking_form")
    dispatcher = CollectingDispatcher()
    return dispatcher, as_dict(run(ValidateBookingForm().run(dispatcher, tracker, DOMAIN)))


def test_a_full_day_asks_whether_to_wait_in_line(fake_app):
    fake_app.take_day("内科", THURSDAY)
    _, events = form_run(fake_app, "明天的内科", {"department": "内科", "date": "明天"},
                         [{"entity": "department", "value": "内科"}, {"entity": "date", "value": "明天"}])
    assert events["day_full"] is True and events["requested_slot"] == "join_waitlist"

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots={"department": "内科", "date": THURSDAY.isoformat()})
    run(ActionAskJoinWaitlist().run(dispatcher, tracker, {}))
    assert responses(dispatcher) == ["utter_booking_day_full"]
    assert dispatcher.messages[0]["day"] == "3月13日(周四)" and "要排队等候吗？" in texts("utter_booking_day_full")


def test_a_day_with_free_seats_lists_them_as_before(fake_app):
    _, events = form_run(fake_app, "明天的内科", {"department": "内科", "date": "明天"},
                         [{"entity": "department", "value": "内科"}, {"entity": "date", "value": "明天"}])
    assert events["day_full"] is None and events["requested_slot"] == "slot_choice"


def join(fake_app, value=True, sender=SENDER, day=THURSDAY.isoformat()):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(intent="affirm" if value else "deny", sender=sender,
                           slots={"department": "内科", "date": day, "day_full": True})
    return dispatcher, run(ValidateBookingForm().validate_join_waitlist(value, dispatcher, tracker, {}))


def test_yes_joins_the_waitlist_and_says_the_place_in_line(fake_app):
    fake_app.take_day("内科", THURSDAY)
    join(fake_app, sender="conv-first")
    dispatcher, result = join(fake_app)
    assert responses(dispatcher) == ["utter_waitlist_joined"] and result == {"join_waitlist": True}
    assert dispatcher.messages[0]["position"] == "现在排第2位"
    mine = [e for e in fake_app.waitlist.values() if e["sender"] == SENDER]
    assert [(e["department"], e["date"], e["status"]) for e in mine] == [("内科", "2025-03-13", "waiting")]


def test_joining_ends_the_form(fake_app):
    fake_app.take_day("内科", THURSDAY)
    tracker = make_tracker(text="好", intent="affirm", active_loop="booking_form", slots={
        "department": "内科", "date": THURSDAY.isoformat(), "day_full": True, "requested_slot": "join_waitlist"})
    # Only the answer was set by this message (the day and department came earlier).
    tracker.events = tracker.events[:1] + [{"event": "slot", "name": "join_waitlist", "value": True}]
    tracker.slots["join_waitlist"] = True
    events = as_dict(run(ValidateBookingForm().run(CollectingDispatcher(), tracker, DOMAIN)))
    assert events["join_waitlist"] is True and events["requested_slot"] is None
    assert [e["status"] for e in fake_app.waitlist.values()] == ["waiting"]


def test_joining_twice_is_a_clear_answer_not_an_error(fake_app):
    fake_app.take_day("内科", THURSDAY)
    join(fake_app)
    dispatcher, result = join(fake_app)
    assert responses(dispatcher) == ["utter_waitlist_already"] and result == {"join_waitlist": True}
    assert dispatcher.messages[0]["position"] == "现在排第1位"
    assert len(fake_app.waitlist) == 1


def test_no_to_the_waitlist_asks_for_another_day(fake_app):
    fake_app.take_day("内科", THURSDAY)
    dispatcher, result = join(fake_app, value=False)
    assert responses(dispatcher) == ["utter_waitlist_not_joined"]
    assert result == {"date": None, "day_full": None, "join_waitlist": None}
    assert not fake_app.waitlist


def test_a_day_without_clinic_cannot_be_waited_for(fake_app):
    dispatcher, result = join(fake_app, day=SUNDAY)
    assert responses(dispatcher) == ["utter_waitlist_no_slots"] and result["date"] is None
    assert not fake_app.waitlist


def test_a_seat_freed_before_the_yes_is_listed_instead(fake_app):
    fake_app.take_day("内科", THURSDAY)
    fake_app.booked.pop(slot_id(1, THURSDAY, 2))
    dispatcher, result = join(fake_app)
    assert responses(dispatcher) == ["utter_waitlist_seats_free"]
    assert result["day_full"] is None and result["slot_choice"] is None and not fake_app.waitlist


def test_app_down_when_joining_asks_again(app_down):
    dispatcher, result = join(None)
    assert responses(dispatcher) == ["utter_app_unavailable"] and result == {"join_waitlist": None}


# --- outside the form: the place in line, leaving, accepting an offer ---
def waiting_entry(fake_app, department="内科", day=THURSDAY, sender=SENDER) -> int:
    fake_app.take_day(department, day)
    join_tracker = make_tracker(sender=sender, slots={"department": department, "date": day.isoformat()})
    run(ValidateBookingForm().validate_join_waitlist(True, CollectingDispatcher(), join_tracker, {}))
    return max(e["id"] for e in fake_app.waitlist.values() if e["sender"] == sender)


def act(action, text="", intent="waitlist_status", entities=()):
    dispatcher = CollectingDispatcher()
    run(action.run(dispatcher, make_tracker(text=text, intent=intent, entities=list(entities)), {}))
    return dispatcher


def test_asking_the_place_in_line(fake_app):
    assert responses(act(ActionWaitlistStatus(), "我排第几了")) == ["utter_waitlist_none"]
    waiting_entry(fake_app, sender="conv-first")
    waiting_entry(fake_app)
    dispatcher = act(ActionWaitlistStatus(), "我排第几了")
    assert dispatcher.messages[0]["items"] == "3月13日(周四)内科：排第2位"


def test_a_live_offer_shows_in_the_status_with_its_time(fake_app):
    entry = waiting_entry(fake_app)
    fake_app.offer(entry, slot_id(1, THURSDAY, 2))
    items = act(ActionWaitlistStatus(), "排到我了吗").messages[0]["items"]
    assert items.startswith("3月13日(周四)内科：有号了：10:00，保留到") and "确认候补" in items


def test_leaving_the_line(fake_app):
    entry = waiting_entry(fake_app)
    dispatcher = act(ActionLeaveWaitlist(), "不排了", "leave_waitlist")
    assert responses(dispatcher) == ["utter_waitlist_left"] and dispatcher.messages[0]["entry"] == "3月13日(周四)内科"
    assert fake_app.waitlist[entry]["status"] == "left"
    assert responses(act(ActionLeaveWaitlist(), "不排了", "leave_waitlist")) == ["utter_waitlist_none"]


def test_leaving_one_of_two_lines_asks_which_unless_named(fake_app):
    first = waiting_entry(fake_app)
    second = waiting_entry(fake_app, "眼科")
    assert responses(act(ActionLeaveWaitlist(), "不排了", "leave_waitlist")) == ["utter_waitlist_leave_which"]
    act(ActionLeaveWaitlist(), "眼科不排了", "leave_waitlist", [{"entity": "department", "value": "眼科"}])
    assert fake_app.waitlist[second]["status"] == "left" and fake_app.waitlist[first]["status"] == "waiting"


def test_accepting_an_offer_books_it(fake_app):
    entry = waiting_entry(fake_app)
    fake_app.offer(entry, slot_id(1, THURSDAY, 2))
    dispatcher = act(ActionAcceptOffer(), "确认候补", "accept_offer")
    assert responses(dispatcher) == ["utter_booking_done"]
    assert dispatcher.messages[0]["summary"] == "内科 3月13日(周四) 10:00 王芳"
    assert fake_app.waitlist[entry]["status"] == "booked"
    assert [a["slot_id"] for a in fake_app.appointments.values() if a["sender"] == SENDER] == [slot_id(1, THURSDAY, 2)]


def test_a_half_yes_books_no_offered_seat(fake_app):
    entry = waiting_entry(fake_app)
    fake_app.offer(entry, slot_id(1, THURSDAY, 2))
    dispatcher = CollectingDispatcher()
    # 那个那个 opening a conversation: the rule for a bare yes leads here, read as affirm at 0.78
    run(ActionAcceptOffer().run(dispatcher, make_tracker(text="那个那个", intent="affirm", confidence=0.78), {}))
    assert responses(dispatcher) == ["utter_offer_unclear_yes"]
    assert dispatcher.messages[0]["entry"] == "3月13日(周四)内科"
    assert fake_app.waitlist[entry]["status"] == "offered"
    assert not [a for a in fake_app.appointments.values() if a["sender"] == SENDER]
    assert responses(act(ActionAcceptOffer(), "好的", "affirm")) == ["utter_booking_done"]  # a clear yes books it


def test_accepting_after_the_offer_lapsed_is_refused_and_books_nothing(fake_app):
    entry = waiting_entry(fake_app)
    hold = fake_app.offer(entry, slot_id(1, THURSDAY, 2))
    fake_app.expire(hold)  # ran out, the app's sweep has not ended it yet
    dispatcher = act(ActionAcceptOffer(), "确认候补", "accept_offer")
    assert responses(dispatcher) == ["utter_offer_lapsed"] and dispatcher.messages[0]["entry"] == "3月13日(周四)内科"
    assert fake_app.waitlist[entry]["status"] == "lapsed"
    assert not [a for a in fake_app.appointments.values() if a["sender"] == SENDER]
    # Asked again once the app marked it lapsed: the same refusal.
    assert responses(act(ActionAcceptOffer(), "确认候补", "accept_offer")) == ["utter_offer_lapsed"]


def test_accepting_without_an_offer_says_there_is_none(fake_app):
    waiting_entry(fake_app)
    assert responses(act(ActionAcceptOffer(), "好的", "affirm")) == ["utter_offer_none"]


@pytest.mark.parametrize("action", [ActionAcceptOffer(), ActionWaitlistStatus(), ActionLeaveWaitlist()])
def test_app_down_outside_the_form_answers_politely(app_down, action):
    assert responses(act(action, "候补")) == ["utter_app_unavailable"]


def test_an_unknown_sender_gets_a_chinese_refusal_not_a_crash(fake_app, monkeypatch):
    monkeypatch.setenv("BOT_SERVICE_TOKEN", "wrong")  # every call answers 401
    dispatcher = act(ActionWaitlistStatus(), "我排第几了")
    assert responses(dispatcher) == ["utter_waitlist_failed"] and dispatcher.messages[0]["reason"]


def test_every_new_response_is_chinese_and_in_the_domain():
    for name in ("utter_ask_confirm_hold", "utter_booking_hold_expired", "utter_booking_day_full",
                 "utter_waitlist_joined", "utter_waitlist_already", "utter_waitlist_status", "utter_waitlist_left",
                 "utter_offer_lapsed", "utter_offer_none", "utter_waitlist_failed"):
        assert any("\u4e00" <= ch <= "\u9fff" for ch in texts(name)), name

