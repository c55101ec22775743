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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import String, Text, and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core import tasks, transports
from app.core.config import setting
from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, HelpContact, Resident, Staff
from app.models.base import utcnow
from app.services import residents
from app.services.help import texts
from app.services.help.chains import chain_of, channels_of
from app.services.help.events import ensure_ticket, record, record_many
from app.services.help.provider_refs import call_ref
from integrations.telephony import KeyPressCall, TextMessage

log = logging.getLogger(__name__)

# A claimed attempt not yet handed to Twilio after this long belongs to a worker that died.
PENDING_GRACE = timedelta(seconds=10)
# A request to Twilio never takes this long (client timeout 10 s); the row is marked unknown.
DIALING_LOST_AFTER = timedelta(minutes=2)
# With nobody reachable in the chain the alert stays in alarm and is looked at again this often.
EMPTY_CHAIN_RETRY = timedelta(seconds=60)
# The shortest time from the start of a round's last step to the next round (see expedite). A provider with flow
# control per number (Aliyun: min_redial_seconds, 60) also holds a new call to a number it called (_redial_not_before).
ROUND_PAUSE = timedelta(seconds=30)
# Call outcomes after which the contact can no longer accept by this call: move on at once.
CALL_ENDED = frozenset({"no-answer", "busy", "failed", "canceled", "completed"})
SWEEP_BATCH = 500
# Attempts of a wave per `help.place_attempts` job: small enough that every worker takes a share of the calls.
PLACE_CHUNK = 25
CHANNEL_NAMES = {"voice": "电话", "sms": "短信", "wechat": "微信"}


def chain_for(alert: HelpAlert) -> list[HelpContact]:
    """The alert's chain: whoever leads it first (a re-alerted acceptor, contact or staff member; then the resident
    for a missed check-in), then the resident's contacts, then (missed check-in) the street's on-duty staff."""
    lead: list[HelpContact] = []
    if alert.lead_contact_id:
        contact = db.session.get(HelpContact, alert.lead_contact_id)
        if contact is not None and channels_of(contact):
            lead.append(contact)
    if alert.lead_staff_id:
        staff = db.session.get(Staff, alert.lead_staff_id)
        if staff is not None and staff.active and staff.phone:
            lead.append(_staff_stand_in(alert, staff, name=staff.display_name))
    if alert.lead_resident:
        resident = db.session.get(Resident, alert.resident_id)
        if resident.phone:
            lead.append(_resident_stand_in(resident))
    return lead + chain_of(resident_id=alert.resident_id) + (_on_duty_staff(alert) if alert.lead_resident else [])


def _resident_stand_in(resident: Resident) -> HelpContact:
    # Not stored: a stand-in for the resident, so their attempts carry no contact id.
    return HelpContact(id=None, resident_id=resident.id, position=0, name=resident.name, phone=resident.phone,
                       relation="family", channels="voice", ring_seconds=30, wait_seconds=60)


def _on_duty_staff(alert: HelpAlert) -> list[HelpContact]:
    """A missed check-in ends with the street's on-duty staff who have a phone (stand-ins, as for the resident)."""
    street_id = residents.street_of(db.session.get(Resident, alert.resident_id))
    on_duty = db.session.scalars(
        select(Staff).where(Staff.street_id == street_id, Staff.on_duty.is_(True), Staff.active.is_(True),
                            Staff.phone.is_not(None)).order_by(Staff.id)
    ).all()
    return [_staff_stand_in(alert, s, name=f"值班{s.display_name}") for s in on_duty]


def _staff_stand_in(alert: HelpAlert, staff: Staff, *, name: str) -> HelpContact:
    # Not stored, like the resident's: the attempt carries no contact id; staff_behind finds who it rang.
    return HelpContact(id=None, resident_id=alert.resident_id, position=0, name=name, phone=staff.phone,
                       relation="staff", channels="voice", ring_seconds=30, wait_seconds=60)


def staff_behind(attempt: EscalationStep) -> int | None:
    """The staff member an attempt without a contact rang (an on-duty or re-alerted staff stand-in), by phone."""
    if attempt.contact_id is not None or not attempt.to_address:
        return None
    alert = db.session.get(HelpAlert, attempt.alert_id)
    street_id = residents.street_of(db.session.get(Resident, alert.resident_id))
    return db.session.scalar(
        select(Staff.id).where(Staff.phone == attempt.to_address, Staff.street_id == street_id,
                               Staff.active.is_(True)).order_by(Staff.on_duty.desc(), Staff.id).limit(1))


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
    not_before = _redial_not_before(alert_id, contact, now)
    if not_before is not None:
        return _wait_to_redial(alert_id, round, step, not_before, ran_out)
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


def _redial_not_before(alert_id: int, contact: HelpContact | None, now: datetime) -> datetime | None:
    """When this alert may call the contact's number again, if that is later than now; else None.

    A provider with flow control per number (Aliyun's voice service: 1 call a minute) refuses a sooner call, and a
    refused call is a contact skipped for the round: a chain of one contact that ends busy, or a short chain whose
    calls all fail at once, would come back to the number within the minute (ROUND_PAUSE is 30 s, Twilio's). The
    time of the last call is its attempt's claim (created with the step; placed at once, or by the sweeper within
    PENDING_GRACE). Per alert: two alerts calling one number (a grid worker) within the minute are not held apart;
    Aliyun refuses the second, recorded as a failed attempt, and that chain moves on.
    """
    if contact is None or not contact.phone or "voice" not in channels_of(contact):
        return None
    provider = transports.telephony_for(contact.phone)
    gap = getattr(provider, "min_redial_seconds", 0)
    if not gap:
        return None
    last = db.session.scalar(
        select(func.max(EscalationStep.created_at))
        .where(EscalationStep.alert_id == alert_id, EscalationStep.channel == "voice",
               EscalationStep.to_address == contact.phone, EscalationStep.provider == provider.name))
    not_before = last + timedelta(seconds=gap) if last is not None else None
    return not_before if not_before is not None and not_before > now else None


def _wait_to_redial(alert_id: int, round_: int, step: int, not_before: datetime, ran_out: bool) -> bool:
    """Keep (round, step) until the number may be called again; the board's alarm goes on now if the round ran out."""
    waited = db.session.execute(
        update(HelpAlert)
        .where(HelpAlert.id == alert_id, HelpAlert.status == "escalating",
               HelpAlert.round == round_, HelpAlert.step == step)
        .values(step_due_at=not_before, alarm=HelpAlert.alarm | ran_out)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if waited:
        _schedule(alert_id, round_, step, not_before, f"redial-{int(not_before.timestamp())}")
    return False


def _claim_attempts(alert_id: int, round_: int, step: int, contact: HelpContact) -> list[EscalationStep]:
    rows = _attempt_rows(alert_id, round_, step, contact)
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _attempt_rows(alert_id: int, round_: int, step: int, contact: HelpContact) -> list[EscalationStep]:
    return [EscalationStep(**values) for values in _attempt_values(alert_id, round_, step, contact)]


def _attempt_values(alert_id: int, round_: int, step: int, contact: HelpContact) -> list[dict]:
    rows = []
    for channel in channels_of(contact):
        address = contact.wechat_openid if channel == "wechat" else contact.phone
        rows.append({"alert_id": alert_id, "round": round_, "step": step, "contact_id": contact.id, "channel": channel,
                     "to_address": address, "status": "pending",
                     "short_code": f"{secrets.randbelow(9000) + 1000}" if channel == "sms" else None})
    return rows


# --- a wave of new alerts (missed check-ins at their deadline): the first step of many at once ---------------

def start_many(*, alert_ids: list[int], now: datetime | None = None) -> int:
    """advance(round=1, step=0) for many new alerts together; returns how many this call moved.

    The same guarantees as advance, batched: one compare-and-set `UPDATE ... WHERE round=1 AND step=0 RETURNING`
    per due time moves the alerts, their attempts (pending) and timeline entries are written in that transaction,
    and the calls are then handed out in chunks (`help.place_attempts`) so every worker dials a share of the wave,
    each through place_attempt's pending -> dialing guard. An alert whose first contact is not simply its resident
    or the first of its chain (a lead contact, on-duty staff only, nobody) takes the ordinary advance.
    """
    now = now or utcnow()
    alerts = db.session.scalars(
        select(HelpAlert).where(HelpAlert.id.in_(alert_ids), HelpAlert.status == "escalating",
                                HelpAlert.round == 1, HelpAlert.step == 0)
    ).all() if alert_ids else []
    if not alerts:
        db.session.rollback()
        return 0
    resident_ids = {a.resident_id for a in alerts}
    people = {r.id: r for r in db.session.scalars(select(Resident).where(Resident.id.in_(resident_ids)))}
    first_contacts: dict[int, HelpContact] = {}
    for contact in db.session.scalars(
            select(HelpContact).where(HelpContact.resident_id.in_(resident_ids), HelpContact.position > 0)
            .order_by(HelpContact.resident_id, HelpContact.position)):
        if contact.resident_id not in first_contacts and channels_of(contact):
            first_contacts[contact.resident_id] = contact
    one_by_one: list[int] = []
    by_due: dict[datetime, list[tuple[HelpAlert, HelpContact]]] = {}
    for alert in alerts:
        contact = _first_of(alert, people[alert.resident_id], first_contacts.get(alert.resident_id))
        if contact is None or alert.ticket_id is None:
            one_by_one.append(alert.id)
            continue
        due = now + timedelta(seconds=contact.ring_seconds + contact.wait_seconds)
        by_due.setdefault(due, []).append((alert, contact))
    started: list[tuple[int, datetime]] = []
    attempts: list[dict] = []
    entries: list[tuple[int | None, str, dict]] = []
    for due, pairs in by_due.items():
        moved = set(db.session.scalars(
            update(HelpAlert)
            .where(HelpAlert.id.in_([a.id for a, _ in pairs]), HelpAlert.status == "escalating",
                   HelpAlert.round == 1, HelpAlert.step == 0)
            .values(round=1, step=1, step_due_at=due)
            .returning(HelpAlert.id).execution_options(synchronize_session=False)
        ).all())
        for alert, contact in pairs:
            if alert.id not in moved:
                continue  # another mover took this one (its own job, the sweeper): it owns the step
            rows = _attempt_values(alert.id, 1, 1, contact)
            attempts += rows
            entries += _step_entries(alert.ticket_id, 1, 1, contact, [a["channel"] for a in rows], False,
                                     alarm_before=alert.alarm)
            started.append((alert.id, due))
    try:
        attempt_ids = list(db.session.scalars(
            insert(EscalationStep).returning(EscalationStep.id, sort_by_parameter_order=True), attempts).all()
        ) if attempts else []
        record_many(entries, now=now)
        db.session.commit()
    except IntegrityError:
        # Only reachable if an attempt of some step (1, 1) exists already; let each alert's own move decide.
        db.session.rollback()
        log.warning("a wave of %s first steps met a claimed one; advancing them one by one", len(alerts))
        one_by_one = [a for a in alert_ids]
        started, attempt_ids = [], []
    place_later(step_ids=attempt_ids, now=now)
    for alert_id in one_by_one:
        advance(alert_id=alert_id, round=1, step=0, now=now)
    # The due moves as advance schedules them, queued together (the sweeper covers them if Redis is gone).
    tasks.later_many("help.advance_alert", [(f"help-{alert_id}-1-1-due", due,
                                             {"alert_id": alert_id, "round_": 1, "step": 1})
                                            for alert_id, due in started])
    started_ids = [alert_id for alert_id, _ in started]
    if started_ids and not tasks.later("help.tell_residents", alert_ids=started_ids, key="received",
                                       job_id=f"help-received-{started_ids[0]}-{len(started_ids)}"):
        tell_residents(alert_ids=started_ids, key="received")
    return len(started)


def _first_of(alert: HelpAlert, resident: Resident, first_contact: HelpContact | None) -> HelpContact | None:
    """chain_for(alert)[0] when it is the resident or their chain's first contact; None for the other cases."""
    if alert.lead_resident and resident.phone:
        return _resident_stand_in(resident)
    if alert.lead_contact_id or alert.lead_staff_id:
        return None
    return first_contact


def tell_residents(*, alert_ids: list[int], key: str) -> int:
    """The notice advance gives a resident when step (1, 1) starts, for a wave of alerts (once per alert and key)."""
    from app.services.help.notices import tell_resident

    return sum(1 for alert_id in alert_ids if tell_resident(alert_id=alert_id, body=texts.resident_received(), key=key))


def place_later(*, step_ids: list[int], now: datetime | None = None) -> None:
    """Hand claimed attempts to the workers in chunks (`help.place_attempts`); inline if Redis cannot take them."""
    for start in range(0, len(step_ids), PLACE_CHUNK):
        chunk = step_ids[start:start + PLACE_CHUNK]
        if not tasks.later("help.place_attempts", step_ids=chunk, job_id=f"help-place-{chunk[0]}-{len(chunk)}"):
            place_many(step_ids=chunk, now=now)


def place_many(*, step_ids: list[int], now: datetime | None = None) -> int:
    """place_attempt for each attempt, HELP_CALL_THREADS requests in flight (each is an HTTP request to the
    provider); a step none of whose attempts went out moves on at once, as in advance. Returns how many went out."""
    now = now or utcnow()
    app = current_app._get_current_object()
    dials = _dials(step_ids)

    def place(dial: _Dial) -> bool:
        with app.app_context():  # its own session: a thread never shares the caller's
            try:
                return _dial(dial, now)
            except Exception:  # noqa: BLE001  the row stays pending or dialing; the sweeper sees to it
                log.exception("help attempt %s could not be placed", dial.id)
                return False

    threads = min(setting("HELP_CALL_THREADS"), len(dials))
    if threads <= 1:
        placed = [place(d) for d in dials]
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="help-call") as pool:
            placed = list(pool.map(place, dials))
    _expedite_failed([d.id for d, ok in zip(dials, placed, strict=True) if not ok], now)
    return sum(placed)


def _dials(step_ids: list[int]) -> list[_Dial]:
    """The pending attempts among `step_ids`, read together (attempts, alerts, residents, contacts: four queries)."""
    attempts = db.session.scalars(select(EscalationStep).where(EscalationStep.id.in_(step_ids),
                                                               EscalationStep.status == "pending")
                                  .order_by(EscalationStep.id)).all() if step_ids else []
    alerts = {a.id: a for a in db.session.scalars(
        select(HelpAlert).where(HelpAlert.id.in_({a.alert_id for a in attempts})))} if attempts else {}
    people = {r.id: r for r in db.session.scalars(
        select(Resident).where(Resident.id.in_({a.resident_id for a in alerts.values()})))} if alerts else {}
    contact_ids = {a.contact_id for a in attempts if a.contact_id}
    contacts = {c.id: c for c in db.session.scalars(
        select(HelpContact).where(HelpContact.id.in_(contact_ids)))} if contact_ids else {}
    dials = [_dial_of(a, alerts[a.alert_id], people[alerts[a.alert_id].resident_id], contacts.get(a.contact_id))
             for a in attempts]
    db.session.rollback()  # end the read before the claims, each in its own thread's session
    return dials


def _expedite_failed(step_ids: list[int], now: datetime) -> None:
    """Steps whose every attempt failed outright: nobody is ringing, so waiting helps no one (as in advance)."""
    if not step_ids:
        return
    steps = {(alert_id, round_, step) for alert_id, round_, step in db.session.execute(
        select(EscalationStep.alert_id, EscalationStep.round, EscalationStep.step)
        .where(EscalationStep.id.in_(step_ids), EscalationStep.status == "send_failed")).all()}
    for alert_id, round_, step in sorted(steps):
        statuses = db.session.scalars(select(EscalationStep.status).where(
            EscalationStep.alert_id == alert_id, EscalationStep.round == round_, EscalationStep.step == step)).all()
        if all(status == "send_failed" for status in statuses):
            expedite(alert_id=alert_id, round=round_, step=step, now=now)


def _record_step(ticket_id, round_, step, contact, attempts, ran_out, *, alarm_before: bool) -> None:
    for _, body, data in _step_entries(ticket_id, round_, step, contact, [a.channel for a in attempts], ran_out,
                                       alarm_before=alarm_before):
        record(ticket_id, body, data=data)


def _step_entries(ticket_id, round_, step, contact, channels: list[str], ran_out, *,
                  alarm_before: bool) -> list[tuple[int | None, str, dict]]:
    """The timeline entries of a step: (ticket id, body, data) each."""
    if contact is None:
        if not alarm_before:
            return [(ticket_id, "求助链中没有可联系的人，已在值班台报警", {"round": round_, "alarm": True})]
        return []
    entries = []
    if ran_out:
        entries.append((ticket_id, f"求助链已走完无人接受，第{round_}轮从头开始，值班台报警",
                        {"round": round_, "alarm": True}))
    names = "、".join(CHANNEL_NAMES[c] for c in channels)
    entries.append((ticket_id, f"第{round_}轮第{step}步：联系{contact.name}（{names}）",
                    {"round": round_, "step": step, "contact_id": contact.id, "channels": channels}))
    return entries


@dataclass(frozen=True)
class _Dial:
    """What handing one attempt to its provider needs, read before the claim: the claim, the request and the
    outcome then hold no ORM state, so a wave's attempts go out from threads with one statement each side."""

    id: int
    alert_id: int
    ticket_id: int | None
    channel: str
    to_address: str
    text: str  # the call's speech, the SMS body or the WeChat text
    sms: texts.Sms | None
    ring_seconds: int
    script: str = "help"  # what a call says (integrations.telephony.SCRIPTS)


def _dial_of(attempt: EscalationStep, alert: HelpAlert, resident: Resident, contact: HelpContact | None) -> _Dial:
    sms = texts.request_sms(resident, attempt.short_code) if attempt.channel == "sms" else None
    script = call_script_of(alert, attempt, resident)
    text = (texts.wechat_request(resident) if attempt.channel == "wechat"
            else texts.call_speech(resident, script) if attempt.channel == "voice" else sms.body)
    return _Dial(id=attempt.id, alert_id=attempt.alert_id, ticket_id=alert.ticket_id, channel=attempt.channel,
                 to_address=attempt.to_address, text=text, sms=sms,
                 ring_seconds=contact.ring_seconds if contact else 30, script=script)


def call_script_of(alert: HelpAlert, attempt: EscalationStep, resident: Resident) -> str:
    """Which words a call of this attempt says, for a provider that fixes them when the call is placed (Aliyun):
    "resident" for a missed check-in's call to the resident themself (its stand-in attempt: no contact, the
    resident's phone; the attempt care.is_resident_call recognises, whose key 1 is the check-in), "checkin" for
    the other calls of a missed check-in, "help" otherwise. Twilio asks the routes for the words instead."""
    if alert.source != "checkin":
        return "help"
    if alert.lead_resident and attempt.contact_id is None and attempt.to_address == resident.phone:
        return "resident"
    return "checkin"


def place_attempt(*, step_id: int, now: datetime | None = None) -> bool:
    """Hand one claimed attempt to its transport; True if it went out. Never sends the same attempt twice."""
    now = now or utcnow()
    attempt = db.session.get(EscalationStep, step_id)
    if attempt is None or attempt.status != "pending":  # a shortcut only: the claim in _dial is the guard
        db.session.rollback()
        return False
    alert = db.session.get(HelpAlert, attempt.alert_id)
    contact = db.session.get(HelpContact, attempt.contact_id) if attempt.contact_id else None
    dial = _dial_of(attempt, alert, db.session.get(Resident, alert.resident_id), contact)
    return _dial(dial, now)


def _dial(dial: _Dial, now: datetime) -> bool:
    """Claim the attempt (pending -> dialing, committed before any request), send it, record how it went."""
    provider = None if dial.channel == "wechat" else transports.telephony_for(dial.to_address)
    claimed = db.session.scalar(_CLAIM, {"attempt_id": dial.id, "provider": provider.name if provider else None,
                                         "now": now})
    db.session.commit()
    if claimed != "dialing":
        return False
    try:
        sid = _send(dial, provider)
        outcome, error = ("placed" if dial.channel == "voice" else "sent"), None
    except Exception as exc:  # noqa: BLE001  any failure of any transport: record it, the chain goes on
        log.warning("help attempt %s (%s) failed: %s", dial.id, dial.channel, exc)
        sid, outcome, error = None, "send_failed", str(exc)[:500]
        record(dial.ticket_id, f"{CHANNEL_NAMES[dial.channel]}联系失败：{str(exc)[:100]}",
               data={"attempt_id": dial.id, "channel": dial.channel, "error": str(exc)[:200]})
    db.session.execute(_OUTCOME, {"attempt_id": dial.id, "outcome": outcome, "sid": sid, "error": error,
                                  "at": utcnow()})
    db.session.commit()
    return outcome != "send_failed"


# Built once (a wave runs them thousands of times): the statements of _dial, on the table itself.
_STEPS, _ALERTS = EscalationStep.__table__, HelpAlert.__table__
_CURRENT = exists().where(_ALERTS.c.id == _STEPS.c.alert_id, _ALERTS.c.status == "escalating",
                          _ALERTS.c.round == _STEPS.c.round, _ALERTS.c.step == _STEPS.c.step)
# The claim, and `skipped` if the alert moved on (accepted, resolved, next step) before we got here, in one
# statement. Who carries the attempt is written with the claim: a row left `dialing` by a dead worker still says
# who may hold the call.
_CLAIM = (update(_STEPS).where(_STEPS.c.id == bindparam("attempt_id"), _STEPS.c.status == "pending")
          .values(status=case((_CURRENT, "dialing"), else_="skipped"),
                  provider=case((_CURRENT, bindparam("provider", type_=String)), else_=None),
                  updated_at=bindparam("now", type_=_STEPS.c.updated_at.type))
          .returning(_STEPS.c.status))
# A status callback can beat this write: its status stands, and it may have stored the sid already.
_OUTCOME = (update(_STEPS).where(_STEPS.c.id == bindparam("attempt_id"))
            .values(status=case((_STEPS.c.status == "dialing", bindparam("outcome", type_=String)),
                                else_=_STEPS.c.status),
                    external_sid=func.coalesce(_STEPS.c.external_sid, bindparam("sid", type_=String)),
                    last_error=bindparam("error", type_=Text), updated_at=bindparam("at", type_=_STEPS.c.updated_at.type)))


def _send(dial: _Dial, provider) -> str | None:
    if dial.channel == "wechat":
        transports.get().wechat.send_text(dial.to_address, dial.text)
        return None
    if dial.channel == "voice":
        base = f"{setting('PUBLIC_BASE_URL').rstrip('/')}/voice/alerts/{dial.alert_id}/steps/{dial.id}"
        return provider.place_call(KeyPressCall(to=dial.to_address, callback_base=base, ref=call_ref(dial.id),
                                                speech=dial.text, ring_seconds=dial.ring_seconds,
                                                script=dial.script))
    return provider.send_text(TextMessage(to=dial.to_address, body=dial.sms.body, template=dial.sms.template,
                                          params=dial.sms.params))


def expedite(*, alert_id: int, round: int, step: int, now: datetime | None = None) -> bool:  # noqa: A002
    """Make (round, step) due now and queue its advance: the contact can no longer accept by this attempt.

    The due time is written first, so if the job is lost the sweeper still moves the alert within
    one sweep interval.
    """
    now = now or utcnow()
    alert = db.session.get(HelpAlert, alert_id)
    if alert is None:
        return False
    chain = chain_for(alert)
    last_of_round = 0 < len(chain) <= step  # the chain may have shrunk since the step began
    due = now
    if last_of_round and alert.step_due_at is not None:
        # A new round starts no sooner than ROUND_PAUSE after the last step began: a chain whose every call
        # fails at once (a provider outage) then goes round once per pause instead of as fast as the workers
        # can dial; a call that rang out unanswered has taken longer than that already.
        contact = chain[-1]
        began = alert.step_due_at - timedelta(seconds=contact.ring_seconds + contact.wait_seconds)
        due = max(now, began + ROUND_PAUSE)
    changed = db.session.execute(
        update(HelpAlert)
        .where(HelpAlert.id == alert_id, HelpAlert.status == "escalating", HelpAlert.round == round,
               HelpAlert.step == step, HelpAlert.step_due_at > due)
        # Nobody left in this round can accept: the board's alarm goes on now, not when the next round starts.
        .values(step_due_at=due, alarm=HelpAlert.alarm | last_of_round).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if changed:
        _schedule(alert_id, round, step, due if due > now else None, "now")
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
