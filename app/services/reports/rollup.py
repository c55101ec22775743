"""The conversation-day rollup the volume and bot reports read, and the query that keeps them exact.

A year of resident messages grouped by (conversation, Shanghai day) was the cost of those two reports.
`conversation_days` holds that grouping, recomputed from `messages` off the webhook path (a periodic job,
the CLI), for the days before a watermark. `conversation_days(scope)` answers the same rows as a live
aggregation would: the rollup for the days before the watermark, plus a live aggregation of the days from
it on, so a report counts messages up to the moment it runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import delete, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.extensions import db
from app.models import Conversation, ConversationDay, Message, RollupWatermark
from app.models.base import utcnow
from app.services.reports._sql import count_if, is_postgres, local_day, scoped_resident_ids
from app.services.reports.unanswered import FALLBACK_INTENT

NAME = "conversation_days"
SHANGHAI_OFFSET = timezone(timedelta(hours=8))  # as in _sql.local_day: no daylight saving since 1991
# A day is rolled up once it has been over this long, so its messages are committed and classified
# (record_intent runs seconds after the reply). A later classification recomputes its row itself.
SETTLE = timedelta(hours=1)
# Each refresh also recomputes these days before the watermark: the net under any late change.
RECHECK_DAYS = 2
COLUMNS = ("conversation_id", "day", "channel", "resident_messages", "classified", "fallback")
# Written as a literal, not a bound parameter, so the planners can match the partial index
# ix_messages_resident_created (SQLite always, PostgreSQL in a generic plan of a prepared statement).
RESIDENT = Message.author == literal("resident", literal_execute=True)


@dataclass(frozen=True)
class Refresh:
    first_day: date | None  # None: every day before `complete_before` was recomputed (a backfill)
    complete_before: date
    rows: int


def midnight_utc(day: date) -> datetime:
    """Shanghai 00:00 of `day`, in UTC: where the rollup's days begin on the timestamp column."""
    return datetime.combine(day, time(0), SHANGHAI_OFFSET).astimezone(timezone.utc)


def shanghai_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI_OFFSET).date()


def live_counts(*conditions):
    """Resident messages grouped by conversation and Shanghai day, in the rollup's columns."""
    day = local_day(Message.created_at)
    # A conversation is on one channel, so min() only names it (grouping by it could split a row).
    return (select(Message.conversation_id.label("conversation_id"), day.label("day"),
                   func.min(Message.channel).label("channel"), func.count().label("resident_messages"),
                   func.count(Message.intent).label("classified"),
                   count_if(Message.intent == FALLBACK_INTENT).label("fallback"))
            .where(RESIDENT, *conditions)
            .group_by(Message.conversation_id, day))


def watermark() -> date | None:
    """The first day not in the rollup (None: nothing rolled up yet)."""
    return db.session.scalar(select(RollupWatermark.complete_before).where(RollupWatermark.name == NAME))


def conversation_days(scope):
    """The scope's conversation-days with resident messages: (conversation_id, day, channel, resident_messages,
    classified, fallback), from the rollup before the watermark and from `messages` from it on.

    Both halves have one row per (conversation, day) and a day is in exactly one of them, so counting and
    summing over the union gives what a live aggregation of every day would.
    """
    conversations = select(Conversation.id).where(Conversation.resident_id.in_(scoped_resident_ids(scope)))
    mark = watermark()
    parts = []
    if mark is not None and scope.start < mark:
        last = min(scope.end, mark - timedelta(days=1))
        parts.append(select(*(getattr(ConversationDay, c).label(c) for c in COLUMNS))
                     .where(ConversationDay.day >= scope.start, ConversationDay.day <= last,
                            ConversationDay.conversation_id.in_(conversations)))
    if mark is None or scope.end >= mark:
        first = scope.start if mark is None else max(scope.start, mark)
        parts.append(live_counts(Message.created_at >= midnight_utc(first),
                                 Message.created_at < midnight_utc(scope.end + timedelta(days=1)),
                                 Message.conversation_id.in_(conversations)))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("conversation_days")


def refresh(*, now: datetime | None = None, since: date | None = None, full: bool = False) -> Refresh:
    """Recompute the rollup up to the last settled day and move the watermark there; commits.

    Recomputes from RECHECK_DAYS before the old watermark (or from `since`); the first refresh, or
    `full`, recomputes every day (the backfill). One transaction: readers see the old rows or the new.
    """
    target = shanghai_day((now or utcnow()) - SETTLE)
    mark = _locked_watermark()
    complete_before = max(target, mark.complete_before or target)
    if full or mark.complete_before is None:
        first = None
    else:
        first = mark.complete_before - timedelta(days=RECHECK_DAYS)
        if since is not None:
            first = min(first, since)
    window = [Message.created_at < midnight_utc(complete_before)]
    stale = [ConversationDay.day < complete_before]
    if first is not None:
        window.append(Message.created_at >= midnight_utc(first))
        stale.append(ConversationDay.day >= first)
    # Rows of the window are rewritten whole: a conversation-day whose messages are gone disappears too.
    db.session.execute(delete(ConversationDay).where(*stale))
    rows = _upsert(live_counts(*window))
    mark.complete_before = complete_before
    mark.refreshed_at = utcnow()
    db.session.commit()
    return Refresh(first_day=first, complete_before=complete_before, rows=rows)


def message_classified(*, message: Message, now: datetime | None = None) -> None:
    """Keep the rollup exact when a message's intent is recorded after its day may have been rolled up.

    Call inside the transaction that sets the intent, before its commit. A message younger than half of
    SETTLE is in a day no refresh can roll up before this transaction commits, so nothing is locked or
    written for it (the usual case: classification follows the reply within seconds). An older one takes
    the watermark's lock, which serialises it with refreshes and other late classifications, and its
    conversation-day is recomputed if it is already rolled up.
    """
    if message.author != "resident" or (now or utcnow()) - message.created_at < SETTLE / 2:
        return
    db.session.flush()
    mark = _locked_watermark(create=False)
    day = shanghai_day(message.created_at)
    if mark is None or mark.complete_before is None or day >= mark.complete_before:
        return
    _upsert(live_counts(Message.conversation_id == message.conversation_id,
                        Message.created_at >= midnight_utc(day),
                        Message.created_at < midnight_utc(day + timedelta(days=1))))


def _locked_watermark(*, create: bool = True) -> RollupWatermark | None:
    """The watermark row, locked until the transaction ends (created first if missing)."""
    if create:
        insert = pg_insert if is_postgres() else sqlite_insert
        db.session.execute(insert(RollupWatermark).values(name=NAME).on_conflict_do_nothing(index_elements=["name"]))
    return db.session.scalar(select(RollupWatermark).where(RollupWatermark.name == NAME)
                             .with_for_update().execution_options(populate_existing=True))


def _upsert(counts) -> int:
    """Write recomputed conversation-days over whatever the rows held (recompute, never increment)."""
    insert = pg_insert if is_postgres() else sqlite_insert
    stmt = insert(ConversationDay).from_select(list(COLUMNS), counts)
    stmt = stmt.on_conflict_do_update(index_elements=["conversation_id", "day"],
                                      set_={c: stmt.excluded[c] for c in COLUMNS[2:]})
    # SQLAlchemy reads an INSERT's row count only when asked to keep it.
    return db.session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
