"""Tickets: opened when the bot cannot help, a help alert fires or a delivery fails; answered by staff.

Life cycle (every change is a TicketEvent):

    open -> pending      staff wait for the resident
    pending -> open      the resident writes (or staff take it back)
    open|pending -> resolved     staff resolve; the resident is asked for a 1-5 rating once (not when the
                                 ticket is dispatched as a work order: its follow-up asks, docs/workorders.md)
    resolved -> open     the resident writes within REOPEN_WINDOW (or staff reopen)
    resolved -> closed   only the close job, REOPEN_WINDOW after resolution; closed is final

Staff act only on tickets of their own street: a ticket of another street is "not found".
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import CannedReply, Message, OutboundMessage, Resident, Staff, Ticket, TicketEvent, WorkOrder
from app.models.base import utcnow
from app.models.tickets import TICKET_PRIORITIES
from app.services import outbox
from app.services.tickets.sla import DEFAULT_SLA, OPEN_STATUSES, breached_filter, due_times, next_due_expression

__all__ = ["DEFAULT_SLA", "OPEN_STATUSES"]

REOPEN_WINDOW = timedelta(days=7)
CSAT_QUESTION = "请为本次服务打分：回复1-5（5分最满意）"
CSAT_THANKS = "感谢您的评价！如还有需要，随时留言。"
STATUS_LABELS = {"open": "处理中", "pending": "等待居民", "resolved": "已解决", "closed": "已关闭"}
# Transitions staff may ask for in the console; the resident's messages and the jobs use their own paths.
STAFF_TRANSITIONS = {
    ("open", "pending"), ("pending", "open"), ("open", "resolved"), ("pending", "resolved"), ("resolved", "open"),
}
VIEWS = ("mine", "unassigned", "open", "breached", "resolved")
CATEGORY_LABELS = {"general": "一般", "handoff": "转人工", "fallback": "机器人未能理解", "complaint": "投诉",
                   "help": "一键求助", "delivery": "消息未送达"}


# --- opening -------------------------------------------------------------------------------------

def open_ticket_for_conversation(*, conversation_id: int) -> Ticket | None:
    return db.session.scalar(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN_STATUSES))
    )


def open_ticket(*, street_id: int, source: str, subject: str, priority: str = "normal", category: str = "general",
                conversation_id: int | None = None, resident_id: int | None = None, body: str = "",
                now: datetime | None = None) -> Ticket:
    """Open a ticket, or return the conversation's open one (one open ticket per conversation)."""
    if conversation_id is not None:
        existing = open_ticket_for_conversation(conversation_id=conversation_id)
        if existing:
            return existing
    now = now or utcnow()
    first_due, resolution_due = due_times(priority=priority, since=now)
    ticket = Ticket(
        street_id=street_id, source=source, subject=subject[:200], priority=priority, category=category,
        conversation_id=conversation_id, resident_id=resident_id, status="open",
        first_response_due_at=first_due, resolution_due_at=resolution_due, created_at=now,
    )
    try:
        # A savepoint, so that losing the race below keeps what the caller has pending in the session.
        with db.session.begin_nested():
            db.session.add(ticket)
    except IntegrityError:  # a concurrent request opened it first; the partial unique index decided
        existing = open_ticket_for_conversation(conversation_id=conversation_id)
        if existing is None:
            raise
        return existing
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", body=body,
                               data={"to": "open", "source": source}, created_at=now))
    db.session.commit()
    return ticket


def open_tickets(*, tickets: list[dict], source: str, priority: str = "normal", category: str = "general",
                 now: datetime | None = None) -> list[int]:
    """Open many tickets without a conversation at once (each dict: street_id, subject, resident_id, body).

    Written in the session's transaction, not committed: the caller commits them with the rows they belong to.
    Returns the ids in the order given.
    """
    if not tickets:
        return []
    now = now or utcnow()
    first_due, resolution_due = due_times(priority=priority, since=now)
    ids = db.session.scalars(
        insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True),
        [{"street_id": t["street_id"], "source": source, "subject": t["subject"][:200], "priority": priority,
          "category": category, "resident_id": t.get("resident_id"), "status": "open",
          "first_response_due_at": first_due, "resolution_due_at": resolution_due, "created_at": now}
         for t in tickets]).all()
    add_events(events=[{"ticket_id": i, "kind": "status", "body": t.get("body", ""),
                        "data": {"to": "open", "source": source}, "created_at": now}
                       for i, t in zip(ids, tickets, strict=True)])
    return list(ids)


def add_events(*, events: list[dict]) -> None:
    """Append many timeline entries at once (dicts of ticket_id, kind, body, data, created_at); not committed."""
    if events:
        db.session.execute(insert(TicketEvent), [{"staff_id": None, **e} for e in events])


def holds_message(*, ticket_id: int, message_id: int) -> bool:
    """Whether the resident's message is on the ticket's timeline already."""
    return db.session.scalar(select(TicketEvent.id).where(
        TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "message_in",
        TicketEvent.data["message_id"].as_integer() == message_id).limit(1)) is not None


def add_event(*, ticket_id: int, kind: str, body: str = "", data: dict | None = None, staff_id: int | None = None,
              commit: bool = True) -> TicketEvent:
    """Append to a ticket's timeline."""
    event = TicketEvent(ticket_id=ticket_id, kind=kind, body=body, data=data, staff_id=staff_id)
    db.session.add(event)
    if commit:
        db.session.commit()
    return event


# --- the resident's side -------------------------------------------------------------------------

def route_resident_message(*, conversation_id: int, message_id: int) -> Ticket | None:
    """Put a resident's message on the conversation's ticket (human mode); None when the bot should answer.

    A resolved ticket within REOPEN_WINDOW is reopened, except by the 1-5 answer to its rating
    question (callers try capture_csat first; this guard keeps a late "5" from reopening anyway).
    """
    message = db.session.get(Message, message_id)
    if message is None or message.conversation_id != conversation_id:
        raise NotFound("no such message in this conversation")
    now = utcnow()
    ticket = open_ticket_for_conversation(conversation_id=conversation_id)
    if ticket is None:
        ticket = _recently_resolved(conversation_id, now)
        if ticket is None or (_awaits_csat(ticket) and parse_score(message.text) is not None):
            return None
        if not _reopen(ticket, now=now, staff_id=None, reason="居民再次留言"):
            db.session.rollback()  # another message reopened it a moment ago; use that
            ticket = open_ticket_for_conversation(conversation_id=conversation_id)
            if ticket is None:
                return None
    elif ticket.status == "pending":
        _move(ticket, "open", now=now, staff_id=None, body="居民已回复")
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="message_in", body=message.text, created_at=now,
                               data={"message_id": message.id, "kind": message.kind}))
    ticket.updated_at = now
    db.session.commit()
    return ticket


def _recently_resolved(conversation_id: int, now: datetime) -> Ticket | None:
    return db.session.scalar(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status == "resolved",
                             Ticket.resolved_at >= now - REOPEN_WINDOW)
        .order_by(Ticket.resolved_at.desc()).limit(1)
    )


def _awaits_csat(ticket: Ticket) -> bool:
    return ticket.csat_requested_at is not None and ticket.csat_score is None


_SCORE = re.compile(r"^\s*([1-5１-５一二三四五])\s*(分|星)?\s*[。.!！]?\s*$")
_SCORE_VALUES = {**{str(i): i for i in range(1, 6)}, **{chr(0xFF10 + i): i for i in range(1, 6)},
                 "一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def parse_score(text: str | None) -> int | None:
    """1-5 from "5", "５", "五", "5分"; None for anything else."""
    match = _SCORE.match(text or "")
    return _SCORE_VALUES[match.group(1)] if match else None


def capture_csat(*, conversation_id: int, text: str) -> str | None:
    """Store a 1-5 rating for the conversation's resolved ticket that asked for one; the thank-you, or None.

    Only while the ticket could still reopen (REOPEN_WINDOW after resolution): after that the bot has the
    conversation again, and a resident's "1" answers the bot's numbered options, not a rating asked long ago.
    """
    score = parse_score(text)
    if score is None:
        return None
    ticket = db.session.scalar(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status == "resolved",
                             Ticket.resolved_at >= utcnow() - REOPEN_WINDOW,
                             Ticket.csat_requested_at.is_not(None), Ticket.csat_score.is_(None))
        .order_by(Ticket.resolved_at.desc()).limit(1)
    )
    if ticket is None:
        return None
    # Compare-and-set: a retried webhook must not score twice.
    won = db.session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.csat_score.is_(None)).values(csat_score=score)
    ).rowcount
    if not won:
        db.session.rollback()
        return None
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="csat", body=f"居民评分：{score}", data={"score": score}))
    db.session.commit()
    return CSAT_THANKS


# --- staff actions -------------------------------------------------------------------------------

def get_ticket(*, ticket_id: int, staff: Staff) -> Ticket:
    """The ticket if it belongs to the staff member's street; another street's ticket is not found."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or ticket.street_id != staff.street_id:
        raise NotFound("工单不存在")
    return ticket


def _load(ticket_id: int, staff_id: int | None) -> tuple[Ticket, Staff | None]:
    if staff_id is None:
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is None:
            raise NotFound("工单不存在")
        return ticket, None
    staff = db.session.get(Staff, staff_id)
    if staff is None or not staff.active:
        raise Forbidden("账号不可用")
    return get_ticket(ticket_id=ticket_id, staff=staff), staff


def _move(ticket: Ticket, to: str, *, now: datetime, staff_id: int | None, body: str = "") -> None:
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", staff_id=staff_id, created_at=now, body=body,
                               data={"from": ticket.status, "to": to}))
    ticket.status = to
    ticket.updated_at = now


def _reopen(ticket: Ticket, *, now: datetime, staff_id: int | None, reason: str) -> bool:
    """resolved -> open as a compare-and-set; False if the ticket was no longer resolved."""
    try:
        won = db.session.execute(
            update(Ticket).where(Ticket.id == ticket.id, Ticket.status == "resolved")
            .values(status="open", resolved_at=None, reopened_count=Ticket.reopened_count + 1, updated_at=now)
        ).rowcount
    except IntegrityError:  # the conversation already has another open ticket
        return False
    if not won:
        return False
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", staff_id=staff_id, created_at=now, body=reason,
                               data={"from": "resolved", "to": "open", "reopen": True}))
    db.session.refresh(ticket)
    return True


def set_status(*, ticket_id: int, staff_id: int, status: str, now: datetime | None = None) -> Ticket:
    """A staff member moves a ticket along its life cycle; anything off STAFF_TRANSITIONS is refused."""
    ticket, _ = _load(ticket_id, staff_id)
    if status == "resolved":
        return resolve_ticket(ticket_id=ticket_id, staff_id=staff_id, now=now)
    _check_transition(ticket.status, status)
    now = now or utcnow()
    if status == "open" and ticket.status == "resolved":
        if not _reopen(ticket, now=now, staff_id=staff_id, reason="工作人员重新打开"):
            db.session.rollback()
            raise Conflict("本会话已有处理中的工单，无法重新打开", code="already_open")
    else:
        _move(ticket, status, now=now, staff_id=staff_id)
    db.session.commit()
    return ticket


def _check_transition(current: str, to: str) -> None:
    if (current, to) in STAFF_TRANSITIONS:
        return
    if to == "closed":
        message = "工单在解决7天后由系统自动关闭，不能手动关闭"
    elif current == "closed":
        message = "工单已关闭，居民再次留言会创建新工单"
    elif current == to:
        message = f"工单已是“{STATUS_LABELS.get(to, to)}”状态"
    else:
        message = f"不能从“{STATUS_LABELS.get(current, current)}”改为“{STATUS_LABELS.get(to, to)}”"
    raise InvalidTransition(message, details={"from": current, "to": to})


def settle_with_alert(*, ticket_id: int, now: datetime) -> None:
    """Resolve a help alert's ticket with its alert: it exists only for that alert, so no rating is asked and no
    transition is refused (an alert's ticket may be resolved already). Joins the caller's transaction."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket.status in ("open", "pending"):
        ticket.status, ticket.resolved_at = "resolved", now


def resolve_ticket(*, ticket_id: int, staff_id: int | None, now: datetime | None = None,
                   ask_rating: bool = True) -> Ticket:
    """Resolve; the resident is asked for a rating once per ticket (the bot takes the conversation back).

    ask_rating=False: the caller asks its own question (a work order's follow-up, which includes the rating). A
    ticket still dispatched to a department is never asked here either: workorders.resolve_ticket is the way to
    resolve it, and if another path resolves it, the work-order sweep completes it and asks the follow-up. Two
    questions would leave the resident's one answer meaning either."""
    ticket, _ = _load(ticket_id, staff_id)
    _check_transition(ticket.status, "resolved")
    now = now or utcnow()
    _move(ticket, "resolved", now=now, staff_id=staff_id)
    ticket.resolved_at = now
    staged = None
    if ask_rating and ticket.csat_requested_at is None and ticket.conversation_id is not None \
            and not _dispatched(ticket.id):
        ticket.csat_requested_at = now
        staged = outbox.stage_message(conversation_id=ticket.conversation_id, body=CSAT_QUESTION,
                                      kind="csat_request", dedup_key=f"csat:{ticket.id}", ticket_id=ticket.id)
    db.session.commit()
    if staged is not None:
        outbox.dispatch(outbound_ids=[staged.id])
    return ticket


def _dispatched(ticket_id: int) -> bool:
    return db.session.scalar(select(WorkOrder.id).where(WorkOrder.ticket_id == ticket_id,
                                                       WorkOrder.state == "dispatched")) is not None


def close_resolved(*, now: datetime | None = None) -> int:
    """Close tickets resolved more than REOPEN_WINDOW ago; a later message opens a new ticket."""
    now = now or utcnow()
    ids = db.session.scalars(
        select(Ticket.id).where(Ticket.status == "resolved", Ticket.resolved_at <= now - REOPEN_WINDOW)
    ).all()
    closed = 0
    for ticket_id in ids:
        if db.session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "resolved")
                              .values(status="closed", closed_at=now, updated_at=now)).rowcount:
            db.session.add(TicketEvent(ticket_id=ticket_id, kind="status", created_at=now, body="解决7天后自动关闭",
                                       data={"from": "resolved", "to": "closed"}))
            closed += 1
    db.session.commit()
    return closed


def expand_canned(*, street_id: int, body: str) -> str:
    """"/hi" alone expands to the street's canned reply with code "hi"; other text is sent as typed."""
    text = (body or "").strip()
    if text.startswith("/") and " " not in text:
        canned = db.session.scalar(
            select(CannedReply).where(CannedReply.street_id == street_id, CannedReply.code == text[1:])
        )
        if canned is None:
            raise ValidationFailed(f"没有快捷回复“{text}”", code="unknown_canned_reply")
        return canned.body
    return text


def canned_replies(*, street_id: int) -> list[CannedReply]:
    return list(db.session.scalars(
        select(CannedReply).where(CannedReply.street_id == street_id).order_by(CannedReply.code)
    ))


def reply(*, ticket_id: int, staff_id: int, body: str, now: datetime | None = None,
          wait_for_resident: bool = False) -> OutboundMessage:
    """Send a staff reply to the resident through the outbox; the first reply meets the first-response target.

    wait_for_resident moves an open ticket to pending with the same commit ("send and wait").
    """
    ticket, staff = _load(ticket_id, staff_id)
    if ticket.status not in OPEN_STATUSES:
        raise InvalidTransition("工单已解决或关闭，请先重新打开再回复", details={"status": ticket.status})
    conversation_id = _reply_conversation_id(ticket)
    text = expand_canned(street_id=staff.street_id, body=body)
    if not text:
        raise ValidationFailed("回复内容不能为空", code="empty_message")
    now = now or utcnow()
    if ticket.assignee_id is None:  # whoever answers an unassigned ticket owns it
        _assign(ticket, staff, actor_id=staff.id, now=now, via="reply")
    row = outbox.stage_message(conversation_id=conversation_id, body=text, kind="staff_reply",
                               ticket_id=ticket.id)
    db.session.flush()
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
    ticket.updated_at = now
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="reply_out", staff_id=staff.id, body=text, created_at=now,
                               data={"outbound_id": row.id}))
    if wait_for_resident and ticket.status == "open":
        _move(ticket, "pending", now=now, staff_id=staff.id)
    db.session.commit()
    outbox.dispatch(outbound_ids=[row.id])
    return row


def _reply_conversation_id(ticket: Ticket) -> int:
    """Where a staff reply goes: the ticket's conversation, or (for a report from the app) the resident's
    conversation on their preferred channel, falling back to the other one."""
    if ticket.conversation_id is not None:
        return ticket.conversation_id
    resident = db.session.get(Resident, ticket.resident_id) if ticket.resident_id else None
    if resident is None:
        raise ValidationFailed("此工单没有居民，无法回复（可添加备注）", code="no_conversation")
    channels = [resident.preferred_channel] + [c for c in ("wechat", "sms") if c != resident.preferred_channel]
    for channel in channels:
        try:
            return outbox.conversation_for(resident_id=resident.id, channel=channel).id
        except NotFound:
            continue
    raise ValidationFailed("居民没有可联系的渠道，无法回复（可添加备注）", code="no_conversation")


def add_note(*, ticket_id: int, staff_id: int, body: str) -> TicketEvent:
    """A private note: on the timeline for staff, never sent to the resident."""
    ticket, staff = _load(ticket_id, staff_id)
    if not (body or "").strip():
        raise ValidationFailed("备注不能为空", code="empty_note")
    event = TicketEvent(ticket_id=ticket.id, kind="note", staff_id=staff.id, body=body.strip())
    db.session.add(event)
    ticket.updated_at = utcnow()
    db.session.commit()
    return event


def _assign(ticket: Ticket, assignee: Staff | None, *, actor_id: int | None, now: datetime, via: str,
            reason: str = "") -> None:
    db.session.add(TicketEvent(
        ticket_id=ticket.id, kind="assignment", staff_id=actor_id, created_at=now,
        body=reason, data={"from": ticket.assignee_id, "to": assignee.id if assignee else None, "via": via},
    ))
    ticket.assignee_id = assignee.id if assignee else None
    ticket.updated_at = now


def claim(*, ticket_id: int, staff_id: int) -> Ticket:
    """Take an unassigned ticket; someone else's ticket is reassigned (with a reason), not claimed."""
    ticket, staff = _load(ticket_id, staff_id)
    if ticket.status == "closed":
        raise InvalidTransition("工单已关闭")
    if ticket.assignee_id == staff.id:
        return ticket
    now = utcnow()
    # Compare-and-set: of two staff clicking at once, one gets it, the other a clear refusal.
    won = db.session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.assignee_id.is_(None))
        .values(assignee_id=staff.id, updated_at=now)
    ).rowcount
    if not won:
        db.session.rollback()
        db.session.refresh(ticket)
        holder = ticket.assignee.display_name if ticket.assignee else "他人"
        raise Conflict(f"工单已由{holder}认领", code="already_assigned")
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="assignment", staff_id=staff.id, created_at=now,
                               data={"from": None, "to": staff.id, "via": "claim"}))
    db.session.commit()
    db.session.refresh(ticket)
    return ticket


def assign(*, ticket_id: int, staff_id: int, assignee_id: int | None, reason: str = "") -> Ticket:
    """Assign or reassign; taking a ticket away from someone needs a reason, and only its holder or an admin may."""
    ticket, actor = _load(ticket_id, staff_id)
    if ticket.status == "closed":
        raise InvalidTransition("工单已关闭")
    assignee = None
    if assignee_id is not None:
        assignee = db.session.get(Staff, assignee_id)
        if assignee is None or assignee.street_id != actor.street_id or not assignee.active:
            raise NotFound("没有这位工作人员")
    if ticket.assignee_id == assignee_id:
        return ticket
    reassigning = ticket.assignee_id is not None
    if reassigning and actor.role != "admin" and ticket.assignee_id != actor.id:
        raise Forbidden("只有当前负责人或组长可以转派此工单")
    reason = (reason or "").strip()
    if reassigning and not reason:
        raise ValidationFailed("转派需要填写原因", code="reason_required")
    _assign(ticket, assignee, actor_id=actor.id, now=utcnow(), via="reassign" if reassigning else "assign",
            reason=reason)
    db.session.commit()
    return ticket


def set_priority(*, ticket_id: int, staff_id: int, priority: str) -> Ticket:
    """Change priority; the due times follow the new priority, counted from the ticket's opening."""
    if priority not in TICKET_PRIORITIES:
        raise ValidationFailed("未知的优先级", code="invalid_priority")
    ticket, staff = _load(ticket_id, staff_id)
    if ticket.priority == priority:
        return ticket
    now = utcnow()
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", staff_id=staff.id, created_at=now,
                               data={"field": "priority", "from": ticket.priority, "to": priority}))
    ticket.priority = priority
    ticket.first_response_due_at, ticket.resolution_due_at = due_times(priority=priority, since=ticket.created_at)
    ticket.updated_at = now
    db.session.commit()
    return ticket


def set_category(*, ticket_id: int, staff_id: int, category: str) -> Ticket:
    category = (category or "").strip()[:30]
    if not category:
        raise ValidationFailed("分类不能为空", code="invalid_category")
    ticket, staff = _load(ticket_id, staff_id)
    if ticket.category != category:
        db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", staff_id=staff.id,
                                   data={"field": "category", "from": ticket.category, "to": category}))
        ticket.category = category
        ticket.updated_at = utcnow()
        db.session.commit()
    return ticket


def offer_unassigned(*, now: datetime | None = None, grace: timedelta = timedelta(minutes=2)) -> list[tuple[int, int]]:
    """Round-robin: tickets nobody claimed within `grace` go to the on-duty staff offered to longest ago.

    The grace period leaves staff time to claim what they want; the order of offers is
    Staff.last_offered_at, so everyone on duty gets the next one in turn. Returns (ticket, staff) ids.
    """
    now = now or utcnow()
    waiting = db.session.scalars(
        select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.assignee_id.is_(None),
                             Ticket.created_at <= now - grace)
        .order_by(next_due_expression().asc().nulls_last(), Ticket.id)
    ).all()
    offered = []
    for ticket in waiting:
        staff = db.session.scalar(
            select(Staff).where(Staff.street_id == ticket.street_id, Staff.on_duty.is_(True), Staff.active.is_(True))
            .order_by(Staff.last_offered_at.asc().nulls_first(), Staff.id).limit(1).with_for_update(skip_locked=True)
        )
        if staff is None:
            continue
        won = db.session.execute(
            update(Ticket).where(Ticket.id == ticket.id, Ticket.assignee_id.is_(None))
            .values(assignee_id=staff.id, updated_at=now)
        ).rowcount
        if won:
            staff.last_offered_at = now
            db.session.add(TicketEvent(ticket_id=ticket.id, kind="assignment", created_at=now,
                                       body=f"轮流分派给{staff.display_name}",
                                       data={"from": None, "to": staff.id, "via": "round_robin"}))
            offered.append((ticket.id, staff.id))
        db.session.commit()
    return offered


# --- reading -------------------------------------------------------------------------------------

def _view_filter(view: str, staff: Staff):
    if view == "mine":
        return [Ticket.assignee_id == staff.id, Ticket.status.in_(OPEN_STATUSES)]
    if view == "unassigned":
        return [Ticket.assignee_id.is_(None), Ticket.status.in_(OPEN_STATUSES)]
    if view == "open":
        return [Ticket.status.in_(OPEN_STATUSES)]
    if view == "breached":
        return [Ticket.status.in_(OPEN_STATUSES), breached_filter()]
    if view == "resolved":
        return [Ticket.status == "resolved"]
    raise ValidationFailed(f"unknown view {view!r}", code="invalid_view")


def queue(*, staff: Staff, view: str = "open", priority: str | None = None, category: str | None = None,
          status: str | None = None, search: str | None = None, limit: int = 200) -> list[Ticket]:
    """The staff member's street's tickets in a view, what is due first on top."""
    query = select(Ticket).where(Ticket.street_id == staff.street_id, *_view_filter(view, staff))
    if priority:
        query = query.where(Ticket.priority == priority)
    if category:
        query = query.where(Ticket.category == category)
    if status:
        query = query.where(Ticket.status == status)
    if search:
        like = f"%{search.strip()}%"
        query = query.where(or_(Ticket.subject.ilike(like), Ticket.category.ilike(like)))
    order = Ticket.resolved_at.desc() if view == "resolved" else next_due_expression().asc().nulls_last()
    return list(db.session.scalars(query.order_by(order, Ticket.id).limit(limit)))


def queue_counts(*, staff: Staff) -> dict[str, int]:
    counts = {}
    for view in VIEWS:
        counts[view] = db.session.scalar(
            select(func.count(Ticket.id)).where(Ticket.street_id == staff.street_id, *_view_filter(view, staff))
        )
    return counts


def categories(*, street_id: int) -> list[str]:
    return list(db.session.scalars(
        select(Ticket.category).where(Ticket.street_id == street_id).distinct().order_by(Ticket.category)
    ))


def awaiting_reply(*, ticket_ids: list[int]) -> set[int]:
    """Tickets whose latest message is the resident's (the console marks them)."""
    if not ticket_ids:
        return set()
    latest = (select(TicketEvent.ticket_id, func.max(TicketEvent.id).label("last_id"))
              .where(TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.kind.in_(("message_in", "reply_out")))
              .group_by(TicketEvent.ticket_id).subquery())
    return set(db.session.scalars(
        select(TicketEvent.ticket_id).join(latest, TicketEvent.id == latest.c.last_id)
        .where(TicketEvent.kind == "message_in")
    ))


def timeline(*, ticket_id: int, staff: Staff, transcript_limit: int = 50) -> list[dict]:
    """One list, oldest first: the bot conversation before the ticket, then every ticket event."""
    ticket = get_ticket(ticket_id=ticket_id, staff=staff)
    events = db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                .order_by(TicketEvent.created_at, TicketEvent.id)).all()
    # The message that opened the ticket is also its first message_in event; show it once.
    on_ticket = {e.data.get("message_id") for e in events if e.kind == "message_in" and e.data}
    entries = []
    if ticket.conversation_id is not None:
        before = db.session.scalars(
            select(Message).where(Message.conversation_id == ticket.conversation_id,
                                  Message.created_at <= ticket.created_at)
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(transcript_limit)
        ).all()
        for m in reversed(before):
            if m.id not in on_ticket:
                entries.append({"kind": "transcript", "at": m.created_at, "author": m.author, "body": m.text,
                                "direction": m.direction, "id": f"m{m.id}"})
    names = {s.id: s.display_name for s in db.session.scalars(select(Staff).where(Staff.street_id == staff.street_id))}
    deliveries = _delivery_states([e.data.get("outbound_id") for e in events if e.data and e.data.get("outbound_id")])
    for e in events:
        entry = {"kind": e.kind, "at": e.created_at, "author": names.get(e.staff_id, "系统") if e.staff_id else "系统",
                 "body": e.body, "data": e.data or {}, "id": f"e{e.id}"}
        if e.kind == "reply_out" and e.data:
            entry["delivery"] = deliveries.get(e.data.get("outbound_id"))
        entries.append(entry)
    return entries


def _delivery_states(ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    rows = db.session.execute(select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.last_error,
                                     OutboundMessage.channel).where(OutboundMessage.id.in_(ids))).all()
    return {r.id: {"status": r.status, "error": r.last_error, "channel": r.channel} for r in rows}


def street_staff(*, street_id: int) -> list[Staff]:
    return list(db.session.scalars(
        select(Staff).where(Staff.street_id == street_id, Staff.active.is_(True)).order_by(Staff.display_name)
    ))
