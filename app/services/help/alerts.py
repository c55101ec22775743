"""One-key help: raising an alert, its acceptance by exactly one person, and what staff do with it.

The step machine itself lives in help_escalation; devices and chains in help_devices.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Community, EscalationStep, HelpAlert, HelpContact, HelpPress, Resident, Staff, Ticket
from app.models.base import utcnow
from app.models.help import ALERT_SOURCES
from app.services import residents, tickets
from app.services.help import escalation, texts
from app.services.help.events import open_alert_ticket, record, record_many
from app.services.help.notices import queue_acceptance_news, queue_family_news, send_contact_sms, winner_name

log = logging.getLogger(__name__)

OPEN_STATUSES = ("escalating", "accepted")
ACCEPT_WORDS = frozenset({"1", "收到"})
# A reply of "1" counts for SMS requests sent this recently; older ones are history, not a pending ask.
SMS_REPLY_WINDOW = timedelta(hours=2)
_SHORT_CODE = re.compile(r"^\d{4}$")


def open_alert_of(*, resident_id: int) -> HelpAlert | None:
    return db.session.scalar(
        select(HelpAlert).where(HelpAlert.resident_id == resident_id, HelpAlert.status.in_(OPEN_STATUSES))
    )


def raise_alert(*, resident_id: int, source: str, device_id: int | None = None, press_id: str | None = None,
                now: datetime | None = None, lead_resident: bool = False) -> HelpAlert:
    """Open an alert (or join the resident's open one) and start its first step at once.

    Idempotent per (device, press id): a device retrying the same press gets the same alert back.
    """
    if source not in ALERT_SOURCES:
        raise ValidationFailed(f"unknown alert source {source!r}", code="invalid_source")
    now = now or utcnow()
    resident = db.session.get(Resident, resident_id)
    if resident is None:
        raise NotFound("no such resident", code="unknown_resident")
    # Three tries: each lost race (a concurrent press of the same resident or the same press id)
    # leaves a row the next try finds.
    for _ in range(3):
        if device_id is not None and press_id:
            known = db.session.scalar(
                select(HelpPress).where(HelpPress.device_id == device_id, HelpPress.press_id == press_id))
            if known is not None:
                return db.session.get(HelpAlert, known.alert_id)
        alert = open_alert_of(resident_id=resident_id)
        try:
            if alert is not None:
                return _join(alert, source=source, device_id=device_id, press_id=press_id, now=now)
            alert = HelpAlert(resident_id=resident_id, source=source, status="escalating", round=1, step=0,
                              step_due_at=now, created_at=now, lead_resident=lead_resident)
            db.session.add(alert)
            db.session.flush()
            db.session.add(HelpPress(alert_id=alert.id, device_id=device_id, press_id=press_id, source=source,
                                     pressed_at=now))
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            continue
        # open_ticket commits: the alert, its press and its ticket become visible together. step_due_at
        # is `now`, so even if this process dies right here the sweeper starts step 1.
        alert.ticket_id = open_alert_ticket(alert, resident, now=now)
        record(alert.ticket_id, f"居民发起一键求助（{source}）", data={"alert_id": alert.id, "source": source})
        db.session.commit()
        enqueue_first_step(alert.id)
        if source != "checkin":  # a missed check-in's family notice is elder care's (care_notice)
            queue_family_news(alert_id=alert.id, event="raised")
        return alert
    raise Conflict("the alert could not be recorded; try again", code="alert_contention")


def raise_alerts(*, resident_ids: list[int], source: str, now: datetime | None = None, lead_resident: bool = False,
                 before_commit: Callable[[dict[int, int]], None] | None = None) -> dict[int, int]:
    """raise_alert for many residents at once (a missed check-in wave): {resident id: alert id}, first steps started.

    New alerts, their presses, tickets and timeline entries are written in one transaction (with whatever
    `before_commit` adds, given the map), then their first steps are taken together (escalation.start_many). A
    resident with an open alert joins it as with raise_alert; a race with a press of the same resident (the unique
    open-alert index) sends the whole batch through raise_alert one by one, which settles each race.
    """
    if source not in ALERT_SOURCES:
        raise ValidationFailed(f"unknown alert source {source!r}", code="invalid_source")
    now = now or utcnow()
    wanted = list(dict.fromkeys(resident_ids))
    people = {r.id: r for r in db.session.scalars(select(Resident).where(Resident.id.in_(wanted)))}
    open_alerts = {a.resident_id: a for a in db.session.scalars(
        select(HelpAlert).where(HelpAlert.resident_id.in_(wanted), HelpAlert.status.in_(OPEN_STATUSES)))}
    fresh = [people[i] for i in wanted if i in people and i not in open_alerts]
    raised: dict[int, int] = {}
    # Held here so street_of finds each community in the session (its identity map keeps no strong reference).
    communities = db.session.scalars(  # noqa: F841
        select(Community).where(Community.id.in_({r.community_id for r in fresh if r.community_id}))).all()
    try:
        ticket_ids = tickets.open_tickets(
            tickets=[{"street_id": residents.street_of(r), "subject": f"一键求助：{texts.who(r)}", "resident_id": r.id,
                      "body": f"求助来源：{source}"} for r in fresh],
            source="help_alert", priority="urgent", category="help", now=now)
        new_ids = list(db.session.scalars(
            insert(HelpAlert).returning(HelpAlert.id, sort_by_parameter_order=True),
            [{"resident_id": r.id, "source": source, "status": "escalating", "round": 1, "step": 0,
              "step_due_at": now, "created_at": now, "lead_resident": lead_resident, "ticket_id": t}
             for r, t in zip(fresh, ticket_ids, strict=True)]).all()) if fresh else []
        joined = list(open_alerts.items())
        presses = new_ids + [alert.id for _, alert in joined]
        if presses:
            db.session.execute(insert(HelpPress), [{"alert_id": a, "device_id": None, "press_id": None,
                                                    "source": source, "pressed_at": now} for a in presses])
        record_many([(t, f"居民发起一键求助（{source}）", {"alert_id": a, "source": source})
                     for a, t in zip(new_ids, ticket_ids, strict=True)]
                    + [(alert.ticket_id, f"居民再次求助（{source}），并入本次求助", {"alert_id": alert.id, "joined": True})
                       for _, alert in joined], now=now)
        raised = {r.id: a for r, a in zip(fresh, new_ids, strict=True)} | {i: alert.id for i, alert in joined}
        if before_commit is not None:
            before_commit(raised)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.warning("bulk raise of %s alerts met a concurrent one; raising them one by one", len(wanted))
        raised = {}
        for resident_id in (i for i in wanted if i in people):
            try:
                raised[resident_id] = raise_alert(resident_id=resident_id, source=source, now=now,
                                                  lead_resident=lead_resident).id
            except Exception:  # noqa: BLE001  one resident's failure must not hold up the others' calls
                log.exception("alert of resident %s could not be raised", resident_id)
                db.session.rollback()
        if before_commit is not None:
            before_commit(raised)
        db.session.commit()
        return raised
    escalation.start_many(alert_ids=new_ids, now=now)
    if source != "checkin":  # a missed check-in's family notice is elder care's (care_notice)
        for alert_id in new_ids:
            queue_family_news(alert_id=alert_id, event="raised")
    return raised


def raise_alert_for_sender(*, sender: str) -> HelpAlert:
    """The bot's request for help on behalf of the resident behind a conversation."""
    from app.services.residents import conversation_by_sender

    return raise_alert(resident_id=conversation_by_sender(sender=sender).resident_id, source="bot")


def enqueue_first_step(alert_id: int) -> None:
    tasks.later("help.advance_alert", alert_id=alert_id, round_=1, step=0, job_id=f"help-{alert_id}-1-0-now")


def _join(alert: HelpAlert, *, source, device_id, press_id, now) -> HelpAlert:
    db.session.add(HelpPress(alert_id=alert.id, device_id=device_id, press_id=press_id, source=source,
                             pressed_at=now))
    db.session.flush()
    record(alert.ticket_id, f"居民再次求助（{source}），并入本次求助", data={"alert_id": alert.id, "joined": True})
    db.session.commit()
    return alert


# --- acceptance: whoever flips escalating -> accepted first wins; everybody else is told -------------

def accept(*, alert_id: int, via: str, contact_id: int | None = None, staff_id: int | None = None,
           attempt_id: int | None = None, now: datetime | None = None) -> bool:
    """Accept the alert for one person; False if it was not escalating any more (someone else won)."""
    now = now or utcnow()
    won = db.session.execute(
        update(HelpAlert).where(HelpAlert.id == alert_id, HelpAlert.status == "escalating")
        .values(status="accepted", accepted_contact_id=contact_id, accepted_staff_id=staff_id, accepted_via=via,
                accepted_at=now, step_due_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not won:
        db.session.rollback()
        return False
    alert = db.session.get(HelpAlert, alert_id)
    db.session.refresh(alert)
    if attempt_id is not None:
        db.session.get(EscalationStep, attempt_id).status = "accepted"
    name = (db.session.get(HelpContact, contact_id).name if contact_id
            else db.session.get(Staff, staff_id).display_name if staff_id else "?")
    record(alert.ticket_id, f"{name}接受了求助（{_VIA[via]}）",
           data={"accepted": True, "via": via, "contact_id": contact_id, "attempt_id": attempt_id},
           staff_id=staff_id)
    db.session.commit()
    queue_acceptance_news(alert_id=alert_id)
    return True


_VIA = {"voice": "电话按1", "sms": "短信回复", "console": "值班台", "wechat": "微信"}


def accept_by_sms(*, from_phone: str, text: str, now: datetime | None = None) -> bool:
    """An SMS from a contact: True if it was an answer to a help request (and was handled as one).

    "1", "收到" or the request's short code accept. False leaves the message to the normal SMS path.
    """
    now = now or utcnow()
    word = _normalise(text)
    is_code = bool(_SHORT_CODE.match(word))
    if word not in ACCEPT_WORDS and not is_code:
        return False
    query = (select(EscalationStep)
             .where(EscalationStep.channel == "sms", EscalationStep.to_address == from_phone,
                    EscalationStep.created_at >= now - SMS_REPLY_WINDOW)
             .order_by(EscalationStep.id.desc()))
    if is_code:
        query = query.where(EscalationStep.short_code == word)
    asked = db.session.scalars(query).all()
    if not asked:
        return False
    # With several alerts asking this phone (a grid worker), a plain "1" answers the newest still open.
    target = next((a for a in asked if db.session.get(HelpAlert, a.alert_id).status == "escalating"), asked[0])
    if accept(alert_id=target.alert_id, via="sms", contact_id=target.contact_id, attempt_id=target.id, now=now):
        return True
    alert = db.session.get(HelpAlert, target.alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    from app.services.help.notices import winner_name

    sms = texts.taken_sms(resident, winner_name(alert)) if alert.status == "accepted" else texts.closed_sms()
    queue_contact_sms(from_phone, sms, key=f"late-{target.id}")
    return True


def _normalise(text: str) -> str:
    # Full-width digits from Chinese keyboards, and trailing punctuation ("收到！", "1。").
    return unicodedata.normalize("NFKC", text or "").strip().strip("。.!！,，~ ").strip()


def queue_contact_sms(phone: str, sms: texts.Sms, *, key: str) -> None:
    """An SMS to a contact by a job (once per key), or at once if Redis cannot take the job."""
    if not tasks.later("help.send_contact_sms", phone=phone, body=sms.body, template=sms.template, params=sms.params,
                       job_id=f"help-sms-{key}"):
        send_contact_sms(phone=phone, body=sms.body, template=sms.template, params=sms.params)


# --- voice: what the called contact hears, and what their keys and the call's end mean ---------------

@dataclass(frozen=True)
class CallScript:
    state: str  # "ask" (alert waiting for someone), "taken" (accepted or closed), "unknown"
    intro: str = ""


def call_script(*, alert_id: int, attempt_id: int) -> CallScript:
    """What a contact hears when they answer the call of this attempt."""
    attempt = db.session.get(EscalationStep, attempt_id)
    if attempt is None or attempt.alert_id != alert_id:
        return CallScript("unknown")
    alert = db.session.get(HelpAlert, alert_id)
    if alert.status != "escalating":
        return CallScript("taken")
    if attempt.status in ("placed", "dialing"):
        attempt.status = "answered"  # answered is not accepted: a voicemail answers too
        db.session.commit()
    return CallScript("ask", intro=texts.call_intro(db.session.get(Resident, alert.resident_id), source=alert.source))


def answer_call_key(*, alert_id: int, attempt_id: int, digits: str, now: datetime | None = None) -> str:
    """A key pressed during the call: "accepted", "taken" (someone else won), "passed" or "again"."""
    now = now or utcnow()
    attempt = db.session.get(EscalationStep, attempt_id)
    if attempt is None or attempt.alert_id != alert_id:
        raise NotFound("no such call attempt")
    if digits == "1":
        # A staff stand-in's call (on-duty staff of a missed check-in, a re-alerted staff acceptor) has no contact:
        # the staff member it rang accepts, so a re-alert can ring them first.
        won = accept(alert_id=alert_id, via="voice", contact_id=attempt.contact_id,
                     staff_id=escalation.staff_behind(attempt), attempt_id=attempt_id, now=now)
        return "accepted" if won else "taken"
    if digits == "2":
        alert = db.session.get(HelpAlert, alert_id)
        attempt.status = "passed"
        record(alert.ticket_id, "联系人按2，不能前往，转下一位", data={"attempt_id": attempt_id, "passed": True})
        db.session.commit()
        escalation.expedite(alert_id=alert_id, round=attempt.round, step=attempt.step, now=now)
        return "passed" if alert.status == "escalating" else "taken"
    return "again"


def accepted_script(*, alert_id: int) -> str:
    alert = db.session.get(HelpAlert, alert_id)
    return texts.call_accepted(db.session.get(Resident, alert.resident_id))


def record_call_status(*, alert_id: int, attempt_id: int, call_status: str, call_sid: str | None = None,
                       now: datetime | None = None) -> None:
    """Twilio's report of how a call ended; a call that cannot be accepted any more moves the chain at once."""
    now = now or utcnow()
    attempt = db.session.get(EscalationStep, attempt_id)
    if attempt is None or attempt.alert_id != alert_id:
        raise NotFound("no such call attempt")
    if call_sid and not attempt.external_sid:
        attempt.external_sid = call_sid  # the callback can beat the commit of the sid we got back
    if attempt.status not in ("accepted", "passed"):
        attempt.status = call_status
    attempt.detail = {**(attempt.detail or {}), "call_status": call_status}
    alert = db.session.get(HelpAlert, alert_id)
    if call_status != "completed" or attempt.status != "accepted":
        record(alert.ticket_id, f"电话结果：{_CALL_STATUS.get(call_status, call_status)}",
               data={"attempt_id": attempt_id, "call_status": call_status})
    db.session.commit()
    if call_status in escalation.CALL_ENDED:
        escalation.expedite(alert_id=alert_id, round=attempt.round, step=attempt.step, now=now)


_CALL_STATUS = {"no-answer": "无人接听", "busy": "占线", "failed": "呼叫失败", "canceled": "已取消",
                "completed": "通话结束"}


# --- staff --------------------------------------------------------------------------------------------

def _alert_for_staff(alert_id: int, staff: Staff) -> HelpAlert:
    alert = db.session.get(HelpAlert, alert_id)
    ticket = db.session.get(Ticket, alert.ticket_id) if alert and alert.ticket_id else None
    if alert is None or ticket is None or ticket.street_id != staff.street_id:
        raise NotFound("no such alert")  # another street's alert does not exist for this staff member
    return alert


def accept_by_staff(*, alert_id: int, staff_id: int, now: datetime | None = None) -> HelpAlert:
    staff = db.session.get(Staff, staff_id)
    alert = _alert_for_staff(alert_id, staff)
    if not accept(alert_id=alert.id, via="console", staff_id=staff_id, now=now):
        raise InvalidTransition("this alert is no longer waiting for someone", code="alert_taken")
    return db.session.get(HelpAlert, alert_id)


def add_note(*, alert_id: int, staff_id: int, body: str) -> None:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed("a note needs text", code="empty_note")
    alert = _alert_for_staff(alert_id, db.session.get(Staff, staff_id))
    record(alert.ticket_id, body[:2000], kind="note", staff_id=staff_id)
    db.session.commit()


def call_again(*, alert_id: int, staff_id: int, now: datetime | None = None) -> HelpAlert:
    """Staff want the phones to ring now: skip the wait, or reopen an accepted alert from the top."""
    now = now or utcnow()
    alert = _alert_for_staff(alert_id, db.session.get(Staff, staff_id))
    if alert.status == "escalating":
        record(alert.ticket_id, "工作人员要求立即呼叫下一位", staff_id=staff_id, data={"call_again": True})
        db.session.commit()
        escalation.expedite(alert_id=alert.id, round=alert.round, step=alert.step, now=now)
        return alert
    if not _reopen(alert, now=now, body=f"工作人员重新呼叫，第{alert.round + 1}轮从头开始", staff_id=staff_id,
                   data={"call_again": True}):
        raise InvalidTransition("this alert is closed", code="alert_closed")
    return db.session.get(HelpAlert, alert.id)


def realert_unresolved(*, alert_id: int, accepted_before: datetime, now: datetime | None = None) -> bool:
    """An accepted alert nobody closed since `accepted_before` rings again: its acceptor first (the contact, or the
    staff member who accepted at the console or by key 1 on an on-duty call, by their phone), then the chain.

    False if it was closed, re-accepted later or already reopened (the same compare-and-set as call_again).
    """
    now = now or utcnow()
    alert = db.session.get(HelpAlert, alert_id)
    if alert is None or alert.status != "accepted" or alert.accepted_at is None \
            or alert.accepted_at > accepted_before:
        db.session.rollback()
        return False
    who = winner_name(alert)
    return _reopen(alert, now=now, lead_contact_id=alert.accepted_contact_id, lead_staff_id=alert.accepted_staff_id,
                   accepted_at=alert.accepted_at,
                   body=f"{who}接受后求助仍未结束，再次呼叫：先{who}，再按求助链（第{alert.round + 1}轮）",
                   data={"realert": True})


def _reopen(alert: HelpAlert, *, now: datetime, body: str, data: dict, staff_id: int | None = None,
            lead_contact_id: int | None = None, lead_staff_id: int | None = None,
            accepted_at: datetime | None = None) -> bool:
    """accepted -> escalating, a new round from the top, led by the given contact or staff member; False if someone
    else moved it."""
    round_ = alert.round
    guard = [HelpAlert.id == alert.id, HelpAlert.status == "accepted", HelpAlert.round == round_]
    if accepted_at is not None:
        guard.append(HelpAlert.accepted_at == accepted_at)
    reopened = db.session.execute(
        update(HelpAlert).where(*guard)
        .values(status="escalating", round=round_ + 1, step=0, step_due_at=now, accepted_contact_id=None,
                accepted_staff_id=None, accepted_via=None, accepted_at=None, lead_contact_id=lead_contact_id,
                lead_staff_id=lead_staff_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not reopened:
        db.session.rollback()
        return False
    record(alert.ticket_id, body, staff_id=staff_id, data={**data, "round": round_ + 1})
    db.session.commit()
    tasks.later("help.advance_alert", alert_id=alert.id, round_=round_ + 1, step=0,
                job_id=f"help-{alert.id}-{round_ + 1}-0-now")
    return True


def settle_alert(*, alert_id: int, outcome: str, body: str, now: datetime | None = None) -> bool:
    """Close an open alert with no staff member behind it (a missed check-in made good); False if it was closed."""
    now = now or utcnow()
    alert = db.session.get(HelpAlert, alert_id)
    if alert is None:
        return False
    closed = db.session.execute(
        update(HelpAlert).where(HelpAlert.id == alert_id, HelpAlert.status.in_(OPEN_STATUSES))
        .values(status="resolved", outcome=outcome, resolved_at=now, step_due_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not closed:
        db.session.rollback()
        return False
    if alert.ticket_id is not None:
        tickets.settle_with_alert(ticket_id=alert.ticket_id, now=now)
    record(alert.ticket_id, body, data={"resolved": True, "outcome": outcome})
    record(alert.ticket_id, "", kind="status", data={"to": "resolved"})
    db.session.commit()
    return True


def resolve_alert(*, alert_id: int, staff_id: int, outcome: str, note: str = "",
                  now: datetime | None = None) -> HelpAlert:
    """Close the alert with its outcome; this also stops the escalation and closes its ticket."""
    if outcome not in texts.OUTCOMES:
        raise ValidationFailed(f"unknown outcome {outcome!r}", code="invalid_outcome")
    now = now or utcnow()
    alert = _alert_for_staff(alert_id, db.session.get(Staff, staff_id))
    closed = db.session.execute(
        update(HelpAlert).where(HelpAlert.id == alert.id, HelpAlert.status.in_(OPEN_STATUSES))
        .values(status="resolved", outcome=outcome, resolved_at=now, step_due_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not closed:
        db.session.rollback()
        raise InvalidTransition("this alert is already closed", code="alert_closed")
    tickets.settle_with_alert(ticket_id=alert.ticket_id, now=now)
    body = f"求助已结束：{texts.OUTCOMES[outcome]}" + (f"。{note.strip()[:500]}" if note.strip() else "")
    record(alert.ticket_id, body, staff_id=staff_id, data={"resolved": True, "outcome": outcome})
    record(alert.ticket_id, "", kind="status", staff_id=staff_id, data={"to": "resolved"})
    db.session.commit()
    return db.session.get(HelpAlert, alert.id)
