"""The escalation machine of a help alert: steps move by compare-and-set, contact attempts are claimed rows.

Guarantees (see docs/help.md):
- (round, step) of an alert only moves by `UPDATE ... WHERE status='escalating' AND round=:r AND step=:s`,
  so the scheduled job, an expedite after a status callback and the sweeper can all try the same move
  and exactly one of them does it.
- The attempts of a step are inserted (status `pending`) in the same transaction as that move; the
  unique (alert, round, step, channel) key means nobody can ever add a second attempt for the step.
- An attempt is handed to its provider (Twilio or Aliyun) only after a guarded `pending -> dialing` update
  is committed, so a rerun or a second worker never places a second call. A worker killed after the move
  but before that update leaves `pending` rows: no provider was reached, and the sweeper dials them (once,
  same guard). A worker killed during the provider's request leaves a `dialing` row: the call may or may
  not exist, so it is never redialled; the step's due time moves the chain on instead.
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError

from app.core import tasks, transports
from app.core.config import setting
from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, HelpContact, Resident, Staff
from app.models.base import utcnow
from app.services import residents
from app.services.help import texts
from app.services.help.events import ensure_ticket, record
from app.services.help.provider_refs import call_ref
from integrations.telephony import KeyPressCall, TextMessage

log = logging.getLogger(__name__)

# A claimed attempt not yet handed to Twilio after this long belongs to a worker that died.
PENDING_GRACE = timedelta(seconds=10)
# A request to Twilio never takes this long (client timeout 10 s); the row is marked unknown.
DIALING_LOST_AFTER = timedelta(minutes=2)
# With nobody reachable in the chain the alert stays in alarm and is looked at again this often.
EMPTY_CHAIN_RETRY = timedelta(seconds=60)
# The shortest time between two rounds of a chain when its last contact can no longer accept (see expedite).
ROUND_PAUSE = timedelta(seconds=30)
# Call outcomes after which the contact can no longer accept by this call: move on at once.
CALL_ENDED = frozenset({"no-answer", "busy", "failed", "canceled", "completed"})
SWEEP_BATCH = 500
CHANNEL_ORDER = ("voice", "sms", "wechat")
CHANNEL_NAMES = {"voice": "电话", "sms": "短信", "wechat": "微信"}


def channels_of(contact: HelpContact) -> list[str]:
    """The channels this contact can actually be reached on, in the order they are tried."""
    wanted = {c.strip() for c in (contact.channels or "").split(",")}
    reachable = {"voice": bool(contact.phone), "sms": bool(contact.phone), "wechat": bool(contact.wechat_openid)}
    return [c for c in CHANNEL_ORDER if c in wanted and reachable[c]]


def chain_of(*, resident_id: int) -> list[HelpContact]:
    """The resident's chain in order; retired contacts (position <= 0) and unreachable ones are skipped."""
    contacts = db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident_id, HelpContact.position > 0)
        .order_by(HelpContact.position)
    ).all()
    return [c for c in contacts if channels_of(c)]


def chain_for(alert: HelpAlert) -> list[HelpContact]:
    """The alert's chain: whoever leads it (the resident for a missed check-in, a re-alerted acceptor) first."""
    lead: list[HelpContact] = []
    if alert.lead_resident:
        resident = db.session.get(Resident, alert.resident_id)
        if resident.phone:
            # Not stored: a stand-in for the resident, so their attempts carry no contact id.
            lead.append(HelpContact(id=None, resident_id=resident.id, position=0, name=resident.name,
                                    phone=resident.phone, relation="family", channels="voice",
                                    ring_seconds=30, wait_seconds=60))
    if alert.lead_contact_id:
        contact = db.session.get(HelpContact, alert.lead_contact_id)
        if contact is not None and channels_of(contact):
            lead.append(contact)
    return lead + chain_of(resident_id=alert.resident_id) + (_on_duty_staff(alert) if alert.lead_resident else [])


def _on_duty_staff(alert: HelpAlert) -> list[HelpContact]:
    """A missed check-in ends with the street's on-duty staff who have a phone (stand-ins, as for the resident)."""
    street_id = residents.street_of(db.session.get(Resident, alert.resident_id))
    on_duty = db.session.scalars(
        select(Staff).where(Staff.street_id == street_id, Staff.on_duty.is_(True), Staff.active.is_(True),
                            Staff.phone.is_not(None)).order_by(Staff.id)
    ).all()
    return [HelpContact(id=None, resident_id=alert.resident_id, position=0, name=f"值班{s.display_name}",
                        phone=s.phone, relation="staff", channels="voice", ring_seconds=30, wait_seconds=60)
            for s in on_duty]


def next_position(round_: int, step: int, chain_length: int) -> tuple[int, int, bool]:
    """(round, step, chain ran out) after (round, step); step 0 means 'before the first contact'."""
    if chain_length == 0:
        return round_ + 1, 0, True
    if step < chain_length:
        return round_, step + 1, False
    return round_ + 1, 1, True


def advance(*, alert_id: int, round: int, step: int, now: datetime | None = None) -> bool:  # noqa: A002
    """Move the alert from (round, step) to the next contact and reach them; False if it had moved already."""
    now = now or utcnow()
    alert = db.session.get(HelpAlert, alert_id)
    if alert is None or alert.status != "escalating" or (alert.round, alert.step) != (round, step):
        return False
    resident = db.session.get(Resident, alert.resident_id)
    # Before the move, so the move and its claimed attempts stay one transaction (it may commit).
    ticket_id = ensure_ticket(alert, resident)
    alarm_before = alert.alarm
    chain = chain_for(alert)
    new_round, new_step, ran_out = next_position(round, step, len(chain))
    contact = chain[new_step - 1] if chain else None
    due = now + (timedelta(seconds=contact.ring_seconds + contact.wait_seconds) if contact else EMPTY_CHAIN_RETRY)
    moved = db.session.execute(
        update(HelpAlert)
        .where(HelpAlert.id == alert_id, HelpAlert.status == "escalating",
               HelpAlert.round == round, HelpAlert.step == step)
        .values(round=new_round, step=new_step, step_due_at=due, alarm=HelpAlert.alarm | ran_out)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        return False
    attempts = _claim_attempts(alert_id, new_round, new_step, contact) if contact else []
    _record_step(ticket_id, new_round, new_step, contact, attempts, ran_out, alarm_before=alarm_before)
    try:
        db.session.commit()
    except IntegrityError:
        # Only reachable if the unique attempt key already holds this step: someone did it; add nothing.
        db.session.rollback()
        log.warning("alert %s step (%s, %s) was already claimed", alert_id, new_round, new_step)
        return False
    attempt_ids = [a.id for a in attempts]

    _schedule(alert_id, new_round, new_step, due, "due")
    placed = [place_attempt(step_id=i, now=now) for i in attempt_ids]
    if attempt_ids and not any(placed):
        # Every channel of this contact failed outright: nobody is ringing, so waiting helps no one.
        expedite(alert_id=alert_id, round=new_round, step=new_step, now=now)
    if (new_round, new_step) == (1, 1):
        from app.services.help.notices import tell_resident

        tell_resident(alert_id=alert_id, body=texts.resident_received(), key="received")
    return True


def _claim_attempts(alert_id: int, round_: int, step: int, contact: HelpContact) -> list[EscalationStep]:
    rows = []
    for channel in channels_of(contact):
        address = contact.wechat_openid if channel == "wechat" else contact.phone
        rows.append(EscalationStep(
            alert_id=alert_id, round=round_, step=step, contact_id=contact.id, channel=channel,
            to_address=address, status="pending",
            short_code=f"{secrets.randbelow(9000) + 1000}" if channel == "sms" else None,
        ))
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _record_step(ticket_id, round_, step, contact, attempts, ran_out, *, alarm_before: bool) -> None:
    if contact is None:
        if not alarm_before:
            record(ticket_id, "求助链中没有可联系的人，已在值班台报警", data={"round": round_, "alarm": True})
        return
    if ran_out:
        record(ticket_id, f"求助链已走完无人接受，第{round_}轮从头开始，值班台报警",
               data={"round": round_, "alarm": True})
    channels = "、".join(CHANNEL_NAMES[a.channel] for a in attempts)
    record(ticket_id, f"第{round_}轮第{step}步：联系{contact.name}（{channels}）",
           data={"round": round_, "step": step, "contact_id": contact.id, "channels": [a.channel for a in attempts]})


def place_attempt(*, step_id: int, now: datetime | None = None) -> bool:
    """Hand one claimed attempt to its transport; True if it went out. Never sends the same attempt twice."""
    now = now or utcnow()
    claimed = db.session.execute(
        update(EscalationStep).where(EscalationStep.id == step_id, EscalationStep.status == "pending")
        .values(status="dialing", updated_at=now).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return False
    attempt = db.session.get(EscalationStep, step_id)
    alert = db.session.get(HelpAlert, attempt.alert_id)
    if alert.status != "escalating" or (alert.round, alert.step) != (attempt.round, attempt.step):
        attempt.status = "skipped"  # the alert moved on (accepted, resolved, next step) before we got here
        db.session.commit()
        return False
    resident = db.session.get(Resident, alert.resident_id)
    try:
        attempt.external_sid = _send(attempt, resident)
        attempt.status = "placed" if attempt.channel == "voice" else "sent"
    except Exception as exc:  # noqa: BLE001  any failure of any transport: record it, the chain goes on
        log.warning("help attempt %s (%s) failed: %s", step_id, attempt.channel, exc)
        attempt.status = "send_failed"
        attempt.last_error = str(exc)[:500]
        record(alert.ticket_id, f"{CHANNEL_NAMES[attempt.channel]}联系失败：{str(exc)[:100]}",
               data={"attempt_id": attempt.id, "channel": attempt.channel, "error": str(exc)[:200]})
    attempt.updated_at = utcnow()
    db.session.commit()
    return attempt.status in ("placed", "sent")


def _send(attempt: EscalationStep, resident: Resident) -> str | None:
    if attempt.channel == "wechat":
        transports.get().wechat.send_text(attempt.to_address, texts.wechat_request(resident))
        return None
    provider = transports.telephony_for(attempt.to_address)
    # Committed before the request: a row left `dialing` by a dead worker still says who may hold the call.
    attempt.provider = provider.name
    db.session.commit()
    if attempt.channel == "voice":
        base = f"{setting('PUBLIC_BASE_URL').rstrip('/')}/voice/alerts/{attempt.alert_id}/steps/{attempt.id}"
        contact = db.session.get(HelpContact, attempt.contact_id) if attempt.contact_id else None
        return provider.place_call(KeyPressCall(
            to=attempt.to_address, callback_base=base, ref=call_ref(attempt.id), speech=texts.call_speech(resident),
            ring_seconds=contact.ring_seconds if contact else 30))
    sms = texts.request_sms(resident, attempt.short_code)
    return provider.send_text(TextMessage(to=attempt.to_address, body=sms.body, template=sms.template,
                                          params=sms.params))


def expedite(*, alert_id: int, round: int, step: int, now: datetime | None = None) -> bool:  # noqa: A002
    """Make (round, step) due now and queue its advance: the contact can no longer accept by this attempt.

    The due time is written first, so if the job is lost the sweeper still moves the alert within
    one sweep interval.
    """
    now = now or utcnow()
    alert = db.session.get(HelpAlert, alert_id)
    if alert is None:
        return False
    # The last step of a round is cut short only to ROUND_PAUSE: a chain whose every call fails at once (a
    # provider outage) then goes round once per pause instead of as fast as the workers can dial.
    last_of_round = step >= len(chain_for(alert))
    due = now + ROUND_PAUSE if last_of_round else now
    changed = db.session.execute(
        update(HelpAlert)
        .where(HelpAlert.id == alert_id, HelpAlert.status == "escalating", HelpAlert.round == round,
               HelpAlert.step == step, HelpAlert.step_due_at > due)
        .values(step_due_at=due).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if changed:
        _schedule(alert_id, round, step, due if last_of_round else None, "now")
    return bool(changed)


def _schedule(alert_id: int, round_: int, step: int, at: datetime | None, why: str) -> None:
    tasks.later("help.advance_alert", alert_id=alert_id, round_=round_, step=step,
                job_id=f"help-{alert_id}-{round_}-{step}-{why}", at=at)


def sweep(*, now: datetime | None = None) -> dict:
    """Advance every overdue alert and dial attempts a dead worker claimed but never placed."""
    now = now or utcnow()
    due = db.session.execute(
        select(HelpAlert.id, HelpAlert.round, HelpAlert.step)
        .where(HelpAlert.status == "escalating", HelpAlert.step_due_at <= now)
        .order_by(HelpAlert.step_due_at).limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()  # end the read; nothing to keep locked while jobs are queued
    for alert_id, round_, step in due:
        # Spread over the workers; if Redis itself is gone, do the move here rather than not at all.
        bucket = int(now.timestamp()) // 15
        if not tasks.later("help.advance_alert", alert_id=alert_id, round_=round_, step=step,
                           job_id=f"help-{alert_id}-{round_}-{step}-sweep-{bucket}"):
            advance(alert_id=alert_id, round=round_, step=step, now=now)
    redialled = _recover_pending(now)
    lost = _mark_lost_dialing(now)
    if due or redialled or lost:
        log.info("help sweep: %s due, %s pending redialled, %s lost", len(due), redialled, lost)
    return {"due": len(due), "redialled": redialled, "lost": lost}


def _recover_pending(now: datetime) -> int:
    stale = db.session.scalars(
        select(EscalationStep.id).join(HelpAlert, and_(
            HelpAlert.id == EscalationStep.alert_id, HelpAlert.round == EscalationStep.round,
            HelpAlert.step == EscalationStep.step))
        .where(EscalationStep.status == "pending", EscalationStep.created_at <= now - PENDING_GRACE,
               HelpAlert.status == "escalating")
    ).all()
    db.session.rollback()
    return sum(1 for step_id in stale if place_attempt(step_id=step_id, now=now))


def _mark_lost_dialing(now: datetime) -> int:
    lost = db.session.execute(
        update(EscalationStep)
        .where(EscalationStep.status == "dialing", EscalationStep.updated_at <= now - DIALING_LOST_AFTER)
        .values(status="unknown", last_error="worker stopped while talking to the transport; not redialled")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return lost
