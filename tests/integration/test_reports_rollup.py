"""The conversation-day rollup behind the volume and bot reports: it equals the live aggregation, the
reports combine it with the live tail exactly, refreshing is idempotent, the CLI backfills it, and a late
classification keeps it exact. On PostgreSQL here; tests/unit/test_reports_rollup_sqlite.py runs the same
tests on SQLite.
"""
from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select

from app.core import transports
from app.core.extensions import db
from app.models import ConversationDay, Message, RollupWatermark
from app.models.base import utcnow
from app.services.reports import intents as bot_insights
from app.services.reports import rollup
from integrations.rasa import ScriptedBot
from tests.factories import ConversationFactory
from tests.helpers.reports import build, check_bot, check_volume, run, sh

# The range the hand-worked figures cover is 2024-05-01 .. 05-03; the fixture street also writes on 04-30.
WATERMARKS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3), date(2024, 5, 4), date(2024, 6, 1)]


@pytest.fixture
def world(session):
    return build()


def roll_up_to(day: date) -> rollup.Refresh:
    """A refresh run just after `day` began and settled: every earlier day is rolled up."""
    return rollup.refresh(now=rollup.midnight_utc(day) + rollup.SETTLE + timedelta(minutes=1))


def rollup_rows() -> list[tuple]:
    return sorted(tuple(r) for r in db.session.execute(
        select(*(ConversationDay.__table__.c[c] for c in rollup.COLUMNS))))


def live_rows(*conditions) -> list[tuple]:
    return sorted(tuple(r) for r in db.session.execute(rollup.live_counts(*conditions)))


def message(text: str) -> Message:
    return db.session.scalar(select(Message).where(Message.text == text))


def test_a_backfill_equals_the_live_aggregation_of_every_message(world):
    result = roll_up_to(date(2024, 6, 1))
    assert result.first_day is None and result.complete_before == date(2024, 6, 1)
    rows = rollup_rows()
    assert result.rows == len(rows)
    assert rows == live_rows()
    # c1 on 05-01: three messages, the bot's reply not among them; two classified, one fallback.
    c1 = message("谢谢").conversation_id
    assert (c1, date(2024, 5, 1), "wechat", 2, 2, 1) in rows
    # The Shanghai-midnight edge: c2's 23:30 message is 05-01, its 00:10 and 00:20 ones 05-02 (one unclassified).
    c2 = message("人工").conversation_id
    assert [r for r in rows if r[0] == c2] == [(c2, date(2024, 5, 1), "sms", 1, 1, 0),
                                               (c2, date(2024, 5, 2), "sms", 2, 1, 1)]
    assert len(rows) == 7  # the five of the range, c3 on 04-30 and the other street's conversation


@pytest.mark.parametrize("mark", WATERMARKS, ids=str)
@pytest.mark.parametrize("check", [check_volume, check_bot], ids=lambda c: c.__name__)
def test_reports_combining_the_rollup_and_the_live_tail_match_the_hand_computed_values(world, mark, check):
    roll_up_to(mark)
    assert rollup.watermark() == mark
    check(world)


def test_messages_after_the_last_refresh_are_counted(world):
    roll_up_to(date(2024, 5, 3))
    c1 = message("谢谢").conversation_id
    # c1 writes on 05-03, which is not rolled up: a new conversation-day, a classified message, a fallback.
    db.session.add(Message(conversation_id=c1, channel="wechat", direction="in", author="resident", text="垃圾几点收",
                           intent="nlu_fallback", created_at=sh(5, 3, 18)))
    db.session.flush()
    volume, bot = run(world, "volume"), run(world, "bot")
    assert volume["totals"]["conversations"] == 6
    assert {"day": "2024-05-03", "channel": "wechat", "count": 2} in volume["conversations"]
    assert (bot["conversations"], bot["contained"], bot["classified_messages"], bot["fallback_messages"]) == (6, 3, 7, 5)
    # Rolled up once the day has settled, with the same figures.
    roll_up_to(date(2024, 5, 4))
    assert run(world, "volume")["totals"] == volume["totals"]
    assert run(world, "bot")["classified_messages"] == 7


def test_refreshing_again_changes_nothing(world):
    first = roll_up_to(date(2024, 5, 4))
    rows = rollup_rows()
    again = roll_up_to(date(2024, 5, 4))
    assert rollup_rows() == rows
    assert again.complete_before == first.complete_before == rollup.watermark()
    assert again.first_day == date(2024, 5, 4) - timedelta(days=rollup.RECHECK_DAYS)
    # A refresh with an earlier clock never moves the watermark back.
    roll_up_to(date(2024, 5, 2))
    assert rollup.watermark() == date(2024, 5, 4)
    assert rollup_rows() == rows


def test_the_watermark_waits_for_the_day_to_settle(world):
    rollup.refresh(now=rollup.midnight_utc(date(2024, 5, 3)) + rollup.SETTLE / 2)
    assert rollup.watermark() == date(2024, 5, 2)


def test_a_refresh_recomputes_the_recent_days_whole(world):
    roll_up_to(date(2024, 5, 4))
    # Whatever a row held (a lost update, a deleted message), the recheck window rewrites it from messages.
    c3 = message("范围之外").conversation_id
    db.session.execute(delete(Message).where(Message.conversation_id == c3, Message.created_at >= sh(5, 3, 0)))
    c1 = message("谢谢").conversation_id
    db.session.execute(ConversationDay.__table__.update().where(ConversationDay.conversation_id == c1)
                       .values(resident_messages=99))
    roll_up_to(date(2024, 5, 4))
    rows = rollup_rows()
    assert not [r for r in rows if r[0] == c3 and r[1] == date(2024, 5, 3)]
    assert (c1, date(2024, 5, 2), "wechat", 1, 1, 1) in rows
    # 05-01 is outside the recheck window (05-02, 05-03): only a rebuild from an earlier day reaches it.
    assert [r for r in rows if r[3] == 99] == [(c1, date(2024, 5, 1), "wechat", 99, 2, 1)]
    assert [r for r in rows if r[3] != 99] == [r for r in live_rows() if r[:2] != (c1, date(2024, 5, 1))]
    rollup.refresh(now=rollup.midnight_utc(date(2024, 5, 4)) + rollup.SETTLE, since=date(2024, 5, 1))
    assert rollup_rows() == live_rows()


def test_the_cli_backfills_and_rebuilds(app, world):
    runner = app.test_cli_runner()
    assert rollup.watermark() is None
    out = runner.invoke(args=["rollup-reports"])
    assert out.exit_code == 0, out.output
    assert "recomputed from the first message" in out.output
    today = rollup.shanghai_day(utcnow() - rollup.SETTLE)
    assert rollup.watermark() == today
    assert rollup_rows() == live_rows()
    db.session.execute(ConversationDay.__table__.update().values(fallback=0))
    out = runner.invoke(args=["rollup-reports", "--full"])
    assert out.exit_code == 0, out.output
    assert rollup_rows() == live_rows()
    out = runner.invoke(args=["rollup-reports", "--since", "2024-05-02"])
    assert "recomputed from 2024-05-02" in out.output
    assert runner.invoke(args=["rollup-reports", "--since", "May 2"]).exit_code != 0


@pytest.fixture
def scripted_bot(app):
    """Requested before `world`: swapping transports pops an app context, which closes the test's session."""
    previous = transports.use(app).bot
    bot = ScriptedBot(intents={"人工": "human_handoff", "新问题": "greet"})
    transports.use(app, bot=bot)
    yield bot
    transports.use(app, bot=previous)


def test_a_late_classification_recomputes_its_rolled_up_day(scripted_bot, world):
    roll_up_to(date(2024, 5, 4))
    late = message("人工")  # c2, 05-02, written in human mode: no intent yet
    assert bot_insights.record_intent(message_id=late.id) == "human_handoff"
    assert (late.conversation_id, date(2024, 5, 2), "sms", 2, 2, 1) in rollup_rows()
    assert rollup_rows() == live_rows()
    bot = run(world, "bot")
    assert (bot["classified_messages"], bot["fallback_messages"], bot["fallback_rate"]) == (7, 4, 0.5714)


def test_a_classification_right_after_the_message_takes_no_lock(scripted_bot, world, monkeypatch):
    roll_up_to(date(2024, 5, 4))
    conversation = ConversationFactory(channel="wechat")
    fresh = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                    text="新问题", created_at=utcnow())
    db.session.add(fresh)
    db.session.flush()

    def no_lock(**_):
        raise AssertionError("the watermark was locked for a message seconds old")

    monkeypatch.setattr(rollup, "_locked_watermark", no_lock)
    assert bot_insights.record_intent(message_id=fresh.id) == "greet"
    assert not [r for r in rollup_rows() if r[0] == conversation.id]


def test_the_rollup_is_refreshed_hourly_by_the_ticker():
    from app.core import tasks

    task = next(t for t in tasks.periodic() if t.name == "reports.refresh_rollups")
    assert (task.every_seconds, task.queue) == (3600, "default")


def test_without_a_watermark_row_nothing_is_rolled_up(world):
    assert db.session.get(RollupWatermark, rollup.NAME) is None
    assert rollup.watermark() is None
    check_volume(world)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("second", ["refresh", "another late classification"])
def test_a_late_classification_in_flight_is_counted_by_whatever_runs_beside_it(app, committed, second):
    """Real connections. Without the watermark's lock, a second late classification of the same day would
    write counts read before the first one's commit over the first one's row (a refresh is held back by the
    row it rewrites, and waits as well)."""
    build()
    c1 = message("谢谢").conversation_id
    for text in ("新问题一", "新问题二"):  # c1 on 05-02, not classified yet
        db.session.add(Message(conversation_id=c1, channel="wechat", direction="in", author="resident", text=text,
                               created_at=sh(5, 2, 15)))
    db.session.commit()
    roll_up_to(date(2024, 5, 4))
    ids = [message("新问题一").id, message("新问题二").id]
    locked, go, finished = threading.Event(), threading.Event(), threading.Event()

    def classify(message_id, *, hold):
        with app.app_context():
            try:
                late = db.session.get(Message, message_id)
                late.intent = "greet"
                rollup.message_classified(message=late)  # takes the watermark's lock until the commit
                if hold:
                    locked.set()
                    go.wait(10)
                db.session.commit()
            finally:
                db.session.remove()

    def run_second():
        with app.app_context():
            try:
                if second == "refresh":
                    roll_up_to(date(2024, 5, 4))
                else:
                    classify(ids[1], hold=False)
                finished.set()
            finally:
                db.session.remove()

    first = threading.Thread(target=classify, args=(ids[0],), kwargs={"hold": True})
    first.start()
    assert locked.wait(10)
    other = threading.Thread(target=run_second)
    other.start()
    assert not finished.wait(0.5)  # held back until the first classification commits
    go.set()
    first.join(10)
    other.join(10)
    assert finished.is_set()
    db.session.expire_all()
    rows = rollup_rows()
    classified = 2 if second == "refresh" else 3  # "社保卡丢了怎么补办" and the late ones
    assert (c1, date(2024, 5, 2), "wechat", 3, classified, 1) in rows
    assert rows == live_rows()
