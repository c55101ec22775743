"""The seat ledger under booking, holds and the waitlist: who has a slot's seats, and where a freed seat goes.

A slot's seats are booked (`slots.booked_count`: appointments not cancelled) or held (`slots.held_count`: holds
with status 'held', expired ones included until they are ended). Both are taken by a guarded UPDATE
(`booked_count + held_count < capacity`) and the CHECK `booked_count + held_count <= capacity` is the database's
last word. A hold changes status only by a compare-and-set on `status = 'held'`, so it ends exactly once
(confirmed, released or expired) and gives its seat back exactly once, on PostgreSQL and on SQLite.

A freed seat goes to the first patient waiting for its department and day, as an offer (a hold of kind 'offer'),
in the transaction that frees it; it becomes free only when nobody waits.

Row locks are taken in the order patient, resident, appointment, hold, waitlist entries, slot: the slot row last,
so no two transactions wait on each other in a circle.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, bindparam, case, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from app.core.config import setting
from app.core.extensions import db
from app.models import Appointment, Conversation, OutboundMessage, Slot, SlotHold, WaitlistEntry
from app.models.base import utcnow
from app.services import outbox
from app.services.booking.calendar import WECHAT_TIME, format_local, local_day
from app.services.booking.errors import SlotTaken

log = logging.getLogger(__name__)

OFFER_TEMPLATE = "waitlist_offer"  # the subscribe-message template of an offer's notice (docs/booking.md)


@contextmanager
def one_transaction():
    """Commit what the block did, or roll all of it back (and release its row locks) on any error."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


# --- counting ----------------------------------------------------------------------------------------------------

def live(now: datetime):
    """The holds that set a seat aside at `now`; one past expires_at no longer counts, ended or not."""
    return and_(SlotHold.status == "held", SlotHold.expires_at > now)


@dataclass(frozen=True)
class HeldSeats:
    """A resident's live holds as the booking caps count them: theirs, and one patient's, in all and on one day."""

    resident_day: int
    resident_total: int
    patient_day: int
    patient_total: int


def _count(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_THAT_DAY = and_(SlotHold.department_id == bindparam("department_id"), SlotHold.local_date == bindparam("local_date"))
_THE_PATIENT = SlotHold.patient_id == bindparam("patient_id")
# Built once, as every booking attempt runs it: a prebuilt statement spares SQLAlchemy most of its per-call work.
_HELD_SEATS = (
    select(_count(_THAT_DAY), func.count(), _count(and_(_THE_PATIENT, _THAT_DAY)), _count(_THE_PATIENT))
    .where(SlotHold.resident_id == bindparam("resident_id"), SlotHold.status == "held",
           SlotHold.expires_at > bindparam("now"), SlotHold.id != bindparam("excluding"))
)


def held_seats(*, resident_id: int, patient_id: int, department_id: int, local_date: date, now: datetime,
               excluding: int | None = None) -> HeldSeats:
    """The resident's live holds, counted against the booking caps like bookings so that holding cannot get round
    them; `excluding`: the hold being confirmed, which becomes the booking."""
    row = db.session.execute(_HELD_SEATS, {
        "resident_id": resident_id, "patient_id": patient_id, "department_id": department_id,
        "local_date": local_date, "now": now, "excluding": excluding or 0}).one()  # ids start at 1
    return HeldSeats(*(int(n) for n in row))


def live_hold_of(*, patient_id: int, department_id: int, local_date: date, now: datetime) -> SlotHold | None:
    return db.session.scalar(select(SlotHold).where(
        SlotHold.patient_id == patient_id, SlotHold.department_id == department_id,
        SlotHold.local_date == local_date, live(now)))


def expired_holds_of_slot(now: datetime):
    """Held seats of the slot row being selected whose hold ran out: free for search, though not yet ended."""
    stale = (select(func.count()).select_from(SlotHold)
             .where(SlotHold.slot_id == Slot.id, SlotHold.status == "held", SlotHold.expires_at <= now)
             .correlate(Slot).scalar_subquery())
    return case((Slot.held_count > 0, stale), else_=0)


# --- the slot row: always the last lock a transaction takes -----------------------------------------------------

def take_seat(slot: Slot, *, as_hold: bool) -> None:
    """The guarded increment of the booked or the held count: only one of the racers takes the last seat."""
    column = "held_count" if as_hold else "booked_count"
    taken = db.session.execute(
        update(Slot).where(Slot.id == slot.id, Slot.booked_count + Slot.held_count < Slot.capacity)
        .values({column: getattr(Slot, column) + 1}).execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        refusal = SlotTaken("no seat is left in this slot")
        # The held seats as this transaction read the slot: with none, no hold of it can be past its time at `now`
        # (a hold made since expires after it was made), so appointments.with_expired_holds_ended need not look.
        refusal.held_seen = slot.held_count
        raise refusal
    db.session.expire(slot, ["booked_count", "held_count"])


def held_to_booked(slot: Slot) -> None:
    """A confirmed hold's seat becomes a booked one: the sum stays, so no seat can be lost or doubled here."""
    _move(slot, booked=+1, held=-1)


def give_back(slot: Slot, *, was_held: bool, offered: bool) -> None:
    """An ended booking's or hold's seat: to the offer made for it (still held), else free."""
    if was_held:
        if not offered:
            _move(slot, held=-1)
    else:
        _move(slot, booked=-1, held=+1 if offered else 0)


def _move(slot: Slot, *, booked: int = 0, held: int = 0) -> None:
    guards = [Slot.id == slot.id]
    if booked < 0:
        guards.append(Slot.booked_count > 0)
    if held < 0:
        guards.append(Slot.held_count > 0)
    moved = db.session.execute(
        update(Slot).where(*guards)
        .values(booked_count=Slot.booked_count + booked, held_count=Slot.held_count + held)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # the counts and the rows disagree: refuse rather than drift
        raise RuntimeError(f"slot {slot.id} has no seat to move ({booked:+d} booked, {held:+d} held)")
    db.session.expire(slot, ["booked_count", "held_count"])


# --- holds ending --------------------------------------------------------------------------------------------------

def end_hold(hold_id: int, status: str, now: datetime, *, expired: bool | None = None) -> SlotHold | None:
    """Compare-and-set 'held' -> `status`: the hold, or None when another transaction ended it first.

    expired=True ends it only if its time is up (the sweep), False only if not (a confirmation), None either way.
    """
    conditions = [SlotHold.id == hold_id, SlotHold.status == "held"]
    if expired is True:
        conditions.append(SlotHold.expires_at <= now)
    elif expired is False:
        conditions.append(SlotHold.expires_at > now)
    ended = db.session.execute(update(SlotHold).where(*conditions).values(status=status, ended_at=now)
                               .execution_options(synchronize_session=False))
    if ended.rowcount != 1:
        return None
    return db.session.execute(select(SlotHold).where(SlotHold.id == hold_id)
                              .execution_options(populate_existing=True)).scalar_one()


def close_entry(entry_id: int, status: str, now: datetime, *, was: str = "offered") -> bool:
    closed = db.session.execute(
        update(WaitlistEntry).where(WaitlistEntry.id == entry_id, WaitlistEntry.status == was)
        .values(status=status, ended_at=now).execution_options(synchronize_session=False))
    return closed.rowcount == 1


def pass_on(hold: SlotHold, now: datetime) -> SlotHold | None:
    """After a hold ended unconfirmed: its offer's place in line is over, and its seat goes to the next waiting."""
    if hold.kind == "offer":
        close_entry(hold.waitlist_entry_id, "lapsed" if hold.status == "expired" else "left", now)
    offer = offer_to_next(hold.slot, now)
    give_back(hold.slot, was_held=True, offered=offer is not None)
    return offer


def expire_due_holds(*, now: datetime, among=None, keep_going: bool = False) -> int:
    """End every hold whose time is up (those matching `among`), one transaction each, and announce the offers
    their seats became; how many were ended.

    keep_going: a hold that fails is logged and left for the next sweep (the periodic job), not raised.
    """
    query = select(SlotHold.id).where(SlotHold.status == "held", SlotHold.expires_at <= now)
    if among is not None:
        query = query.where(among)
    ended = 0
    for hold_id in db.session.scalars(query.order_by(SlotHold.expires_at, SlotHold.id)).all():
        try:
            with one_transaction():
                hold = end_hold(hold_id, "expired", now, expired=True)
                offer = pass_on(hold, now) if hold is not None else None
        except Exception:
            if not keep_going:
                raise
            log.exception("expiring a hold failed", extra={"hold_id": hold_id})
            continue
        ended += hold is not None
        announce(offer, now)
    return ended


# --- the waitlist's side -------------------------------------------------------------------------------------------

def offer_to_next(slot: Slot, now: datetime) -> SlotHold | None:
    """Hold `slot`'s freed seat for the first patient waiting for its department and day; None if nobody waits.

    Touches entries and holds only: the caller moves the slot's counts afterwards (the slot row is the last lock).
    """
    if slot.start_at <= now:
        return None  # a seat of a slot that has begun is of no use to anyone
    passed_over: list[int] = []
    while True:
        entry = db.session.execute(
            select(WaitlistEntry).where(WaitlistEntry.department_id == slot.department_id,
                                        WaitlistEntry.local_date == slot.local_date, WaitlistEntry.status == "waiting",
                                        WaitlistEntry.id.not_in(passed_over))
            .order_by(WaitlistEntry.id).limit(1).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if entry is None:
            return None
        passed_over.append(entry.id)
        if _booked_that_day(entry):
            entry.status, entry.ended_at = "booked", now  # booked some other way meanwhile: out of the line
            continue
        if live_hold_of(patient_id=entry.patient_id, department_id=entry.department_id,
                        local_date=entry.local_date, now=now) is not None:
            continue  # holding a seat of that day right now: the next one gets this seat
        offer = SlotHold(slot_id=slot.id, resident_id=entry.resident_id, patient_id=entry.patient_id,
                         department_id=slot.department_id, local_date=slot.local_date, kind="offer", status="held",
                         waitlist_entry_id=entry.id, created_at=now,
                         expires_at=min(now + timedelta(seconds=setting("BOOKING_OFFER_SECONDS")), slot.start_at))
        # The entry's row is written first: on SQLite that begins the transaction, so the savepoint below nests
        # in it rather than committing on its own.
        entry.status = "offered"
        db.session.flush()
        try:
            with db.session.begin_nested():
                db.session.add(offer)
        except IntegrityError:  # a hold of that patient's day committed a moment ago (uq_slot_holds_held_patient_day)
            entry.status = "waiting"
            db.session.flush()
            continue
        return offer


def _booked_that_day(entry: WaitlistEntry) -> bool:
    return bool(db.session.scalar(select(exists().where(
        Appointment.patient_id == entry.patient_id, Appointment.department_id == entry.department_id,
        Appointment.local_date == entry.local_date, Appointment.status == "booked"))))


def free_slot_of_day(department_id: int, local_date: date, now: datetime) -> Slot | None:
    """The earliest upcoming slot of the day with a seat neither booked nor held (callers end due holds first)."""
    return db.session.scalar(
        select(Slot).where(Slot.department_id == department_id, Slot.local_date == local_date, Slot.start_at > now,
                           Slot.booked_count + Slot.held_count < Slot.capacity)
        .order_by(Slot.start_at, Slot.id).limit(1))


def offer_free_seats(department_id: int, local_date: date, now: datetime) -> int:
    """Free seats of a day while patients wait for it (one freed as somebody joined): each to the next in line,
    announced; how many offers were made."""
    offered = 0
    while True:
        slot = free_slot_of_day(department_id, local_date, now)
        if slot is None:
            return offered
        try:
            with one_transaction():
                offer = offer_to_next(slot, now)
                if offer is not None:
                    take_seat(slot, as_hold=True)
        except SlotTaken:  # booked by someone in between: look again
            continue
        if offer is None:
            return offered
        offered += 1
        announce(offer, now)


def days_with_waiting(now: datetime) -> list[tuple[int, date]]:
    return [tuple(row) for row in db.session.execute(
        select(WaitlistEntry.department_id, WaitlistEntry.local_date).where(WaitlistEntry.status == "waiting")
        .where(WaitlistEntry.local_date >= local_day(now)).distinct())]


# --- telling the resident ------------------------------------------------------------------------------------------

def announce(offers: list[SlotHold | None] | SlotHold | None, now: datetime | None = None) -> None:
    """Send the notice of each offer made (after its commit); a failure is logged and the sweep sends it later."""
    if offers is None or isinstance(offers, SlotHold):
        offers = [offers]
    for offer in offers:
        if offer is None:
            continue
        try:
            notify_offer(hold_id=offer.id, now=now)
        except Exception:
            db.session.rollback()
            log.exception("offer notice failed", extra={"hold_id": offer.id})


def notify_offer(*, hold_id: int, now: datetime | None = None) -> OutboundMessage | None:
    """Queue the notice of a live offer once: notified_at is set in the commit that stages the outbox row."""
    now = now or utcnow()
    offer = db.session.get(SlotHold, hold_id)
    if offer is None or not _unannounced(offer, now):
        return None
    conversation = outbox.conversation_to_reach(resident_id=offer.resident_id)  # may commit a new conversation
    message = None
    with one_transaction():
        offer = db.session.execute(select(SlotHold).where(SlotHold.id == hold_id).with_for_update()
                                   .execution_options(populate_existing=True)).scalar_one()
        if not _unannounced(offer, now):
            return None
        offer.notified_at = now
        if conversation is None:
            log.warning("no channel to offer a seat on", extra={"hold_id": hold_id})
        else:
            message = _stage(offer, conversation)
    if message is not None:
        outbox.dispatch(outbound_ids=[message.id])
    return message


def announce_pending(now: datetime) -> int:
    """The sweep's share of the notices: live offers whose notice was lost between their commit and its own."""
    pending = list(db.session.scalars(select(SlotHold).where(
        SlotHold.kind == "offer", live(now), SlotHold.notified_at.is_(None)).order_by(SlotHold.id)))
    announce(pending, now)
    return len(pending)


def _unannounced(offer: SlotHold, now: datetime) -> bool:
    return offer.kind == "offer" and offer.status == "held" and offer.expires_at > now and offer.notified_at is None


def _stage(offer: SlotHold, conversation: Conversation) -> OutboundMessage | None:
    try:
        with db.session.begin_nested():
            message = outbox.stage_message(conversation_id=conversation.id, body=offer_text(offer),
                                           kind="waitlist_offer", dedup_key=f"waitlist-offer:{offer.id}",
                                           template=OFFER_TEMPLATE, fields=offer_fields(offer))
            db.session.flush()
        return message
    except IntegrityError:  # queued before; the dedup key is the outbox's own guard
        return None


def offer_fields(offer: SlotHold) -> dict:
    """The offer's subscribe-message fields (mapped to the template's keywords by WECHAT_SUBSCRIBE_TEMPLATES)."""
    slot = offer.slot
    return {"patient": offer.patient.name, "time": format_local(slot.start_at, WECHAT_TIME),
            "place": f"{slot.department.hospital.name}{slot.department.name}",
            "until": format_local(offer.expires_at, WECHAT_TIME)}


def offer_text(offer: SlotHold) -> str:
    slot = offer.slot
    place = f"{slot.department.hospital.name}{slot.department.name}"
    # Short: one UCS-2 SMS part holds 70 characters.
    return (f"【邻里】候补到号：{offer.patient.name}{format_local(slot.start_at, '%m月%d日%H:%M')}{place}，"
            f"保留至{format_local(offer.expires_at, '%H:%M')}，回复“确认候补”约上，逾期让给下一位。")
