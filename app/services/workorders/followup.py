"""The follow-up (回访) after a department completes a work order: the resident is asked on their channel whether
the problem was solved and how satisfied they are (1-5); "not solved" reopens the ticket to the same department.

One open question per conversation (a partial unique index), so a reply in chat can only mean one ticket. The
answer comes by chat (conversations.inbound asks answer_by_message before a resolved ticket would reopen) or by the
app (answer()). A question unanswered after WORKORDER_FOLLOWUP_HOURS expires; a done work order whose question was
never asked (the process died after resolving) is asked by the sweep.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.core.config import setting
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import FollowUp, ResidentRequest, Ticket, WorkOrder, WorkOrderDispatch
from app.models.base import utcnow
from app.services import outbox, tickets
from app.services.workorders import orders
from app.services.workorders.orders import event

log = logging.getLogger(__name__)

TEMPLATE = "ticket_followup"
THANKS_SOLVED = "感谢您的回访评价！如还有需要，随时留言。"
THANKS_REOPENED = "收到，您反映的问题已重新交给原办理部门，我们会尽快处理。"


def not_reopened(*, ticket_id: int | None) -> str:
    """The reply to "未解决" when the ticket could not reopen: the conversation's other open ticket holds it."""
    where = f"（工单 #{ticket_id}）" if ticket_id else ""
    return (f"收到，问题还没有解决。您还有一个正在处理的诉求{where}，这个问题暂时无法重新打开；"
            "请直接回复说明情况，工作人员会一并处理。")
_ANSWER = re.compile(
    r"^\s*(已解决|已经解决|解决了|未解决|没解决|没有解决|还没解决)\s*[，,。.!！ ]*\s*(?:满意度)?\s*([1-5１-５])?\s*(?:分|星)?"
    r"\s*[。.!！]?\s*$")
_WIDE = str.maketrans("１２３４５", "12345")
# A score alone ("5", the answer to the old rating question) says nothing of whether the problem was solved.
_SCORE_ONLY = re.compile(r"^\s*[1-5１-５]\s*(?:分|星)?\s*[。.!！]?\s*$")
ASK_AGAIN = "请回复“已解决”或“未解决”，并加上满意度1-5分，例如：已解决 5"


def question(*, subject: str, department: str) -> str:
    return (f"【回访】您反映的“{subject[:40]}”已由{department}办结。问题解决了吗？"
            "请回复“已解决”或“未解决”，并加上满意度1-5分（5分最满意），例如：已解决 5")


def parse_answer(text: str | None) -> tuple[bool, int | None] | None:
    """("已解决 5") -> (True, 5); ("未解决") -> (False, None); anything else -> None."""
    match = _ANSWER.match(text or "")
    if not match:
        return None
    solved = not match.group(1).startswith(("未", "没", "还没"))
    return solved, int(match.group(2).translate(_WIDE)) if match.group(2) else None


def ask(*, work_order_id: int, now: datetime | None = None) -> FollowUp | None:
    """Ask once per completion; None when the resident cannot be reached (noted on the timeline)."""
    now = now or utcnow()
    order = db.session.get(WorkOrder, work_order_id)
    if order is None or order.state != "done":
        return None
    earlier = db.session.scalar(select(FollowUp).where(FollowUp.work_order_id == order.id,
                                                       FollowUp.asked_at >= order.done_at))
    if earlier is not None:
        return earlier
    ticket = db.session.get(Ticket, order.ticket_id)
    conversation_id = ticket.conversation_id
    if conversation_id is None and ticket.resident_id is not None:
        reached = outbox.conversation_to_reach(resident_id=ticket.resident_id)
        conversation_id = reached.id if reached else None
    # The turn that was completed (the latest): the answer counts for the department that had it.
    turn = db.session.scalar(select(WorkOrderDispatch.id).where(WorkOrderDispatch.work_order_id == order.id)
                             .order_by(WorkOrderDispatch.id.desc()).limit(1))
    followup = FollowUp(work_order_id=order.id, dispatch_id=turn, ticket_id=ticket.id, resident_id=ticket.resident_id,
                        conversation_id=conversation_id, asked_at=now,
                        status="asked" if conversation_id is not None else "expired")
    if conversation_id is not None:
        # An older question on the same conversation gives way: the reply can only mean the newest.
        db.session.execute(update(FollowUp).where(FollowUp.conversation_id == conversation_id,
                                                  FollowUp.status == "asked").values(status="expired")
                           .execution_options(synchronize_session=False))
    db.session.add(followup)
    db.session.flush()
    if conversation_id is None:
        event(ticket.id, "followup_unreachable", "无法回访：居民没有可联系的渠道", staff_id=None, now=now)
        db.session.commit()
        return None
    department = order.department.name
    row = outbox.stage_message(conversation_id=conversation_id, kind="followup", ticket_id=ticket.id,
                               body=question(subject=ticket.subject, department=department),
                               dedup_key=f"followup:{followup.id}", template=TEMPLATE,
                               fields={"subject": ticket.subject[:20], "department": department,
                                       "ticket": str(ticket.id)})
    event(ticket.id, "followup_asked", "已向居民发起回访", staff_id=None, now=now, followup_id=followup.id)
    db.session.commit()
    outbox.dispatch(outbound_ids=[row.id])
    return followup


def answer_by_message(*, conversation_id: int, text: str, now: datetime | None = None) -> str | None:
    """The reply to a resident's chat message if it answers their open follow-up; None to let it go on as usual."""
    parsed = parse_answer(text)
    if parsed is None and not _SCORE_ONLY.match(text or ""):
        return None
    followup = db.session.scalar(select(FollowUp).where(FollowUp.conversation_id == conversation_id,
                                                        FollowUp.status == "asked"))
    if followup is None:
        return None
    if parsed is None:
        # Asked again rather than guessed, and not passed on: as a new message it would reopen the resolved ticket
        # and send the work order back to its department.
        return ASK_AGAIN
    solved, score = parsed
    try:
        refused_by = _record(followup, solved=solved, satisfaction=score, text=text, via="chat", now=now or utcnow())
    except Conflict:  # answered a moment ago (a retried webhook): the first answer stands
        return None
    if solved:
        return THANKS_SOLVED
    return THANKS_REOPENED if refused_by is None else not_reopened(ticket_id=refused_by)


def answer(*, followup_id: int, resident_id: int, solved: bool, satisfaction: int | None = None,
           now: datetime | None = None) -> FollowUp:
    """The resident's answer from the app: an unknown follow-up (or another resident's) is not found, an answered
    or expired one a 409; nothing is changed by either."""
    followup = db.session.get(FollowUp, followup_id)
    if followup is None or followup.resident_id != resident_id:
        raise NotFound("没有这次回访", code="followup_not_found")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ValidationFailed("满意度为1-5分", code="invalid_score")
    _record(followup, solved=solved, satisfaction=satisfaction, text=None, via="app", now=now or utcnow())
    db.session.refresh(followup)
    return followup


def answer_of_request(*, resident_id: int, request_id: int, solved: bool, satisfaction: int | None = None,
                      now: datetime | None = None) -> FollowUp:
    """The app's answer, by the resident's request: another resident's request is not found (as a missing one), a
    request without a follow-up too (404 followup_not_found); an answered or expired one is 409 followup_closed."""
    request = db.session.get(ResidentRequest, request_id)
    if request is None or request.resident_id != resident_id:
        raise NotFound("no such request")
    followup = latest_of(ticket_id=request.ticket_id)
    if followup is None:
        raise NotFound("这个诉求还没有回访", code="followup_not_found")
    return answer(followup_id=followup.id, resident_id=resident_id, solved=solved, satisfaction=satisfaction, now=now)


def _record(followup: FollowUp, *, solved: bool, satisfaction: int | None, text: str | None, via: str,
            now: datetime) -> int | None:
    """Record the answer; "not solved" reopens. None, or when the reopening was refused the id of the open ticket
    that holds the conversation (0 if none is found), so the reply can say so."""
    if followup.status != "asked":
        raise Conflict("这次回访已结束", code="followup_closed", details={"status": followup.status})
    won = db.session.execute(
        update(FollowUp).where(FollowUp.id == followup.id, FollowUp.status == "asked")
        .values(status="answered", answered_at=now, solved=solved, satisfaction=satisfaction, answer=text)
        .execution_options(synchronize_session=False)).rowcount
    if not won:
        db.session.rollback()
        raise Conflict("这次回访已结束", code="followup_closed")
    if satisfaction is not None:  # the ticket's rating, as the other ratings are (reports read it there)
        db.session.execute(update(Ticket).where(Ticket.id == followup.ticket_id, Ticket.csat_score.is_(None))
                           .values(csat_score=satisfaction).execution_options(synchronize_session=False))
    body = "回访：" + ("已解决" if solved else "未解决") + (f"，满意度 {satisfaction}/5" if satisfaction else "")
    event(followup.ticket_id, "followup_answer", body, staff_id=None, now=now, followup_id=followup.id,
          solved=solved, satisfaction=satisfaction, via=via)
    db.session.commit()
    return None if solved else _reopen(followup, now)


def _reopen(followup: FollowUp, now: datetime) -> int | None:
    """Not solved: the ticket opens again and goes back to the same department, its limits counted from now. None
    when it did; else the open ticket that holds the conversation (0 if none is found)."""
    order = db.session.get(WorkOrder, followup.work_order_id)
    ticket = db.session.get(Ticket, followup.ticket_id)
    if ticket.status == "resolved":
        try:
            tickets.set_status(ticket_id=ticket.id, staff_id=None, status="open", now=now)
        except Conflict as exc:  # the conversation has another open ticket already
            db.session.rollback()
            holder = db.session.scalar(select(Ticket.id).where(
                Ticket.conversation_id == ticket.conversation_id, Ticket.id != ticket.id,
                Ticket.status.in_(orders.OPEN)).order_by(Ticket.id.desc()).limit(1)) if ticket.conversation_id else None
            event(ticket.id, "reopen_refused", f"回访未解决，但无法重新打开：{exc.message}", staff_id=None, now=now,
                  open_ticket_id=holder)
            db.session.commit()
            return holder or 0
    db.session.refresh(ticket)
    orders.reopen(order, ticket, now=now, staff_id=None, body=f"回访未解决，退回“{order.department.name}”重新办理",
                  via="followup")
    db.session.commit()
    return None


def expire_open(*, work_order_id: int) -> None:
    """The unanswered question of a work order reopened by another path: it asked about a completion that no longer
    stands, so a later "已解决" must not count for it. Joins the caller's transaction."""
    db.session.execute(update(FollowUp).where(FollowUp.work_order_id == work_order_id, FollowUp.status == "asked")
                       .values(status="expired").execution_options(synchronize_session=False))


def sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """(asked, expired): ask the done work orders nobody asked, expire the questions nobody answered in time."""
    now = now or utcnow()
    expired = db.session.execute(
        update(FollowUp).where(FollowUp.status == "asked",
                               FollowUp.asked_at < now - timedelta(hours=setting("WORKORDER_FOLLOWUP_HOURS")))
        .values(status="expired").execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    _settle_resolved_elsewhere(now)
    _reopen_reopened_elsewhere(now)
    asked_after = select(FollowUp.id).where(FollowUp.work_order_id == WorkOrder.id,
                                            FollowUp.asked_at >= WorkOrder.done_at).exists()
    unasked = db.session.scalars(select(WorkOrder.id).where(WorkOrder.state == "done", ~asked_after)).all()
    asked = 0
    for order_id in unasked:
        try:
            asked += ask(work_order_id=order_id, now=now) is not None
        except Exception:  # one resident's trouble must not stop the others' questions
            db.session.rollback()
            log.exception("follow-up of work order %s not asked", order_id)
    return asked, expired


def _settle_resolved_elsewhere(now: datetime) -> None:
    """A dispatched work order whose ticket was resolved by another path (the ticket page's status button, a help
    alert) is done too, so the follow-up is asked and the timers stop."""
    stray = db.session.execute(select(WorkOrder.id, Ticket.id, Ticket.resolved_at).join(
        Ticket, Ticket.id == WorkOrder.ticket_id).where(WorkOrder.state == "dispatched",
                                                        Ticket.status.in_(("resolved", "closed")))).all()
    for order_id, ticket_id, resolved_at in stray:
        if db.session.execute(update(WorkOrder).where(WorkOrder.id == order_id, WorkOrder.state == "dispatched")
                              .values(state="done", done_at=resolved_at or now)
                              .execution_options(synchronize_session=False)).rowcount:
            orders.end_turn(order_id, outcome="done", now=resolved_at or now)
            event(ticket_id, "complete", "工单已解决，部门工单随之办结", staff_id=None, now=now)
        db.session.commit()


def _reopen_reopened_elsewhere(now: datetime) -> None:
    """A done work order whose ticket is open again (a reopen whose work-order step was lost: the process died
    between the two commits) goes back to its department, as completion.reopen_with_ticket does at once."""
    stray = db.session.scalars(select(WorkOrder).join(Ticket, Ticket.id == WorkOrder.ticket_id).where(
        WorkOrder.state == "done", Ticket.status.in_(orders.OPEN))).all()
    for order in stray:
        ticket = db.session.get(Ticket, order.ticket_id)
        if orders.reopen(order, ticket, now=now, staff_id=None,
                         body=f"工单已重新打开，退回“{order.department.name}”重新办理", via="sweep"):
            expire_open(work_order_id=order.id)
        db.session.commit()


def latest_of(*, ticket_id: int) -> FollowUp | None:
    return db.session.scalar(select(FollowUp).where(FollowUp.ticket_id == ticket_id)
                             .order_by(FollowUp.asked_at.desc(), FollowUp.id.desc()).limit(1))
