"""Duplicate reports: residents' reports (随手拍) of the same category at the same place (the same 一号定位 pole
number, or coordinates within about 50 m) within WORKORDER_DUPLICATE_HOURS are linked to the first one's ticket, the
parent. Staff work on the parent; when it is resolved, every linked reporter hears the outcome and their ticket is
resolved with it.

Linking runs in the sweep (a report commits its ticket first, so nothing here can slow or fail the report), and
so does telling: both are marked in `ticket_duplicates`, so a rerun links and tells once.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app.core.config import setting
from app.core.errors import DomainError
from app.core.extensions import db
from app.models import ResidentRequest, Ticket, TicketDuplicate
from app.models.base import utcnow
from app.services import outbox, tickets
from app.services.workorders.orders import event

log = logging.getLogger(__name__)

NEAR_DEGREES = 0.0005  # about 50 m of latitude; the same order of longitude at China's latitudes
OPEN = ("open", "pending")


def parent_of(*, ticket_id: int) -> int | None:
    return db.session.scalar(select(TicketDuplicate.parent_ticket_id).where(TicketDuplicate.ticket_id == ticket_id))


def children_of(*, ticket_id: int) -> list[int]:
    return list(db.session.scalars(select(TicketDuplicate.ticket_id)
                                   .where(TicketDuplicate.parent_ticket_id == ticket_id)
                                   .order_by(TicketDuplicate.ticket_id)))


def link_new_reports(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """Link each recent report to the earliest earlier report of the same problem; (child, parent) ticket ids."""
    now = now or utcnow()
    window = timedelta(hours=setting("WORKORDER_DUPLICATE_HOURS"))
    mine, earlier = aliased(ResidentRequest), aliased(ResidentRequest)
    mine_ticket, earlier_ticket = aliased(Ticket), aliased(Ticket)
    same_place = or_(
        and_(mine.pole_number.is_not(None), earlier.pole_number == mine.pole_number),
        and_(mine.latitude.is_not(None), earlier.latitude.is_not(None),
             func.abs(earlier.latitude - mine.latitude) <= NEAR_DEGREES,
             func.abs(earlier.longitude - mine.longitude) <= NEAR_DEGREES),
    )
    linked = select(TicketDuplicate.ticket_id)
    # The window between the two reports is checked here, not in SQL: an interval's arithmetic differs by dialect.
    candidates = db.session.execute(
        select(mine.ticket_id, mine.created_at, earlier.ticket_id, earlier.created_at)
        .join(mine_ticket, mine_ticket.id == mine.ticket_id)
        .join(earlier, and_(earlier.category == mine.category, earlier.id < mine.id, same_place))
        .join(earlier_ticket, earlier_ticket.id == earlier.ticket_id)
        .where(mine.created_at >= now - window, earlier.created_at >= now - 2 * window,
               mine_ticket.status.in_(OPEN), earlier_ticket.street_id == mine_ticket.street_id,
               earlier_ticket.status.in_(OPEN), mine.ticket_id.not_in(linked), earlier.ticket_id.not_in(linked))
        .order_by(mine.ticket_id, earlier.ticket_id)
    ).all()
    rows: dict[int, int] = {}
    for child, child_at, parent, parent_at in candidates:
        if child not in rows and child_at - parent_at <= window:
            rows[child] = parent
    rows = sorted(rows.items())
    done = []
    for child, parent in rows:
        try:
            with db.session.begin_nested():
                db.session.add(TicketDuplicate(ticket_id=child, parent_ticket_id=parent, created_at=now))
        except IntegrityError:  # another sweep linked it a moment ago
            continue
        event(child, "duplicate", f"与工单 #{parent} 反映的是同一问题，已合并到该工单处理", staff_id=None, now=now,
              parent_ticket_id=parent)
        event(parent, "duplicate_linked", f"工单 #{child} 是同一问题的重复反映，已合并", staff_id=None, now=now,
              child_ticket_id=child)
        db.session.commit()
        done.append((child, parent))
    return done


def tell_outcome(*, parent_ticket_id: int, now: datetime | None = None) -> int:
    """The parent is resolved: each linked reporter hears it once and their ticket resolves; how many were told."""
    now = now or utcnow()
    parent = db.session.get(Ticket, parent_ticket_id)
    if parent is None or parent.status not in ("resolved", "closed"):
        return 0
    told = 0
    for child_id in db.session.scalars(select(TicketDuplicate.ticket_id).where(
            TicketDuplicate.parent_ticket_id == parent_ticket_id, TicketDuplicate.notified_at.is_(None))).all():
        if not db.session.execute(update(TicketDuplicate).where(TicketDuplicate.ticket_id == child_id,
                                                                TicketDuplicate.notified_at.is_(None))
                                  .values(notified_at=now).execution_options(synchronize_session=False)).rowcount:
            continue
        child = db.session.get(Ticket, child_id)
        body = f"您反映的问题与其他居民反映的是同一问题（工单 #{parent.id}），现已处理完毕。感谢您的反映！"
        staged = _stage_notice(child, body)
        # The record says whether anyone was told: a reporter with no channel hears nothing, and staff must know.
        event(child.id, "duplicate_outcome",
              "主工单已办结，已告知本工单居民" if staged is not None else "主工单已办结，但本工单居民没有可联系的渠道，无法告知",
              staff_id=None, now=now, parent_ticket_id=parent.id, told=staged is not None)
        db.session.commit()
        if staged is not None:
            outbox.dispatch(outbound_ids=[staged])
        if child.status in OPEN:
            try:
                tickets.resolve_ticket(ticket_id=child.id, staff_id=None, now=now, ask_rating=False)
            except DomainError as exc:
                db.session.rollback()
                log.info("duplicate ticket %s not resolved with its parent: %s", child.id, exc)
        told += 1
    return told


def _stage_notice(ticket: Ticket, body: str) -> int | None:
    conversation_id = ticket.conversation_id
    if conversation_id is None and ticket.resident_id is not None:
        reached = outbox.conversation_to_reach(resident_id=ticket.resident_id)
        conversation_id = reached.id if reached else None
    if conversation_id is None:
        return None
    row = outbox.stage_message(conversation_id=conversation_id, body=body, kind="notice", ticket_id=ticket.id,
                               dedup_key=f"duplicate-outcome:{ticket.id}")
    db.session.flush()
    return row.id


def tell_resolved_parents(*, now: datetime | None = None) -> int:
    """The sweep's half of telling: parents resolved by any path (the console's status button too)."""
    parents = db.session.scalars(
        select(TicketDuplicate.parent_ticket_id).join(Ticket, Ticket.id == TicketDuplicate.parent_ticket_id)
        .where(TicketDuplicate.notified_at.is_(None), Ticket.status.in_(("resolved", "closed"))).distinct()).all()
    return sum(tell_outcome(parent_ticket_id=p, now=now) for p in parents)
