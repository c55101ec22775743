"""The daily check-in (平安打卡): enrolment, check-ins by button, WeChat menu, SMS or call, and missed days.

A missed day raises a help alert (source `checkin`) led by the resident themself: the same durable escalation
as a press calls them, then their contacts in order, then the street's on-duty staff (help.escalation.chain_for).
"""
from __future__ import annotations

import logging
import re
import unicodedata
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core import tasks
from app.core.config import setting
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Checkin, CheckinEnrolment, Conversation, EscalationStep, HelpAlert, Message, Resident
from app.models.base import utcnow
from app.services import help as help_service
from app.services.care import texts
from app.services.care.family import tell_contacts

log = logging.getLogger(__name__)

# Words that say "check me in" whatever was asked before; compared after NFKC, trimming and lower-casing.
CHECKIN_WORDS = frozenset({"平安", "打卡", "平安打卡", "签到", "报平安", "我平安", "平安签到"})
# Words that only answer a question: a check-in only in reply to the missed-check-in call (_asked_by_call).
REPLY_WORDS = frozenset({"1", "好", "好的", "ok"})
# A bare "1" answers a check-in call placed this recently (a round calls the resident again sooner than this).
REPLY_WINDOW = timedelta(hours=2)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
BATCH = 500
NEWS_BATCH = 50
# A marked day still without its alert this long after (its batch job was lost) is queued again.
LOST_BATCH_AFTER = timedelta(seconds=60)


def _tz() -> ZoneInfo:
    return ZoneInfo(setting("TIMEZONE"))


def local_day(now: datetime) -> date:
    return now.astimezone(_tz()).date()


def enrol(*, resident_id: int, due_time: str, now: datetime | None = None) -> CheckinEnrolment:
    """Enrol (or change the time of) a resident; days are checked from the day after enrolment."""
    match = _HHMM.match(due_time or "")
    if not match:
        raise ValidationFailed("due_time is HH:MM (Asia/Shanghai)", code="invalid_due_time")
    if db.session.get(Resident, resident_id) is None:
        raise NotFound("no such resident", code="unknown_resident")
    enrolment = _enrolment_of(resident_id)
    if enrolment is None:
        enrolment = CheckinEnrolment(resident_id=resident_id, enrolled_at=now or utcnow())
        db.session.add(enrolment)
    elif not enrolment.active:
        enrolment.enrolled_at = now or utcnow()
    enrolment.due_time = time(int(match[1]), int(match[2]))
    enrolment.active = True
    try:
        db.session.commit()
    except IntegrityError:  # enrolled twice at once: the other one stands, with this time
        db.session.rollback()
        return enrol(resident_id=resident_id, due_time=due_time, now=now)
    return enrolment


def unenrol(*, resident_id: int) -> None:
    enrolment = _enrolment_of(resident_id)
    if enrolment is None or not enrolment.active:
        raise NotFound("this resident is not enrolled", code="not_enrolled")
    enrolment.active = False
    db.session.commit()


def enrolment_of(*, resident_id: int) -> CheckinEnrolment:
    enrolment = _enrolment_of(resident_id)
    if enrolment is None or not enrolment.active:
        raise NotFound("this resident is not enrolled in the daily check-in", code="not_enrolled")
    return enrolment


def _enrolment_of(resident_id: int) -> CheckinEnrolment | None:
    return db.session.scalar(select(CheckinEnrolment).where(CheckinEnrolment.resident_id == resident_id))


def check_in(*, resident_id: int, via: str, now: datetime | None = None) -> Checkin:
    """Today's check-in (a second one the same day is the first); a resident not enrolled is refused (409).

    If a missed day's alert is still open, it is closed and the contacts are told all is well.
    """
    now = now or utcnow()
    enrolment = _enrolment_of(resident_id)
    if enrolment is None or not enrolment.active:
        raise Conflict("this resident is not enrolled in the daily check-in", code="not_enrolled")
    today = local_day(now)
    checkin = _today(resident_id, today)
    if checkin is None:
        try:
            with db.session.begin_nested():
                checkin = Checkin(resident_id=resident_id, local_date=today, via=via, checked_in_at=now)
                db.session.add(checkin)
        except IntegrityError:  # two check-ins at once: one row
            checkin = _today(resident_id, today)
        db.session.commit()
    if enrolment.last_alert_id:  # any check-in shows the resident is well: a missed day's open alert stops
        _made_good(enrolment, now)
    return checkin


def _today(resident_id: int, today: date) -> Checkin | None:
    return db.session.scalar(select(Checkin).where(Checkin.resident_id == resident_id, Checkin.local_date == today))


def _made_good(enrolment: CheckinEnrolment, now: datetime) -> None:
    alert = db.session.get(HelpAlert, enrolment.last_alert_id)
    if alert is None or alert.source != "checkin" or alert.status not in ("escalating", "accepted"):
        return
    if help_service.settle_alert(alert_id=alert.id, outcome="checked_in", body="居民已补打平安卡，呼叫停止", now=now):
        resident = db.session.get(Resident, enrolment.resident_id)
        tell_contacts(resident=resident, body=texts.missed_made_good(resident), event="已补打平安卡",
                      dedup_key=f"checkin-ok:{alert.id}", now=now)


def check_in_by_device(*, device_uid: str, timestamp: int, signature: str, now: datetime | None = None) -> Checkin:
    """A signed check-in from the resident's button (the help scheme over "checkin\\n<uid>\\n<timestamp>")."""
    now = now or utcnow()
    device = help_service.authenticate_device(device_uid=device_uid, message=canonical_checkin(device_uid, timestamp),
                                              signature=signature, timestamp=timestamp, now=now)
    return check_in(resident_id=device.resident_id, via="device", now=now)


def canonical_checkin(device_uid: str, timestamp: int) -> str:
    return f"checkin\n{device_uid}\n{timestamp}"


def check_in_by_sms(*, from_phone: str, text: str, now: datetime | None = None) -> str | None:
    """An SMS from an enrolled resident's phone that is a check-in: checks in every resident enrolled with that
    phone whose day is still open, and returns the reply to send.

    The SMS webhook calls it after help's SMS acceptance, so a "1" to a help request is never taken here.
    What counts (docs/help.md, "Daily check-in"):
    - an unambiguous word (CHECKIN_WORDS: 平安, 打卡, 签到 ...) while today's check-in is open;
    - a bare "1"/"好"/"ok" (REPLY_WORDS) only as the answer to a missed-check-in call that asked this phone (the
      alert still open, the call placed within REPLY_WINDOW) when nothing was said to this phone since: a bot's
      question, a booking's "确认吗？", a staff reply after the call makes the "好" theirs.
    None for anything else (the message goes on its normal way, to the bot).
    """
    now = now or utcnow()
    word = unicodedata.normalize("NFKC", text or "").strip().strip("。.!！,，~ ").strip().lower()
    if word not in CHECKIN_WORDS and word not in REPLY_WORDS:
        return None
    enrolled = db.session.execute(
        select(CheckinEnrolment, Resident).join(Resident, Resident.id == CheckinEnrolment.resident_id)
        .where(Resident.phone == from_phone, CheckinEnrolment.active.is_(True)).order_by(Resident.id)
    ).all()
    if not enrolled:
        return None
    today = local_day(now)
    checked = set(db.session.scalars(select(Checkin.resident_id).where(
        Checkin.resident_id.in_([r.id for _, r in enrolled]), Checkin.local_date == today)))
    open_ = [(e, r) for e, r in enrolled if r.id not in checked]
    if word in REPLY_WORDS and not _asked_by_call(from_phone, [e for e, _ in open_], now):
        return None
    if not open_:
        db.session.rollback()
        return texts.already_checked_in()  # an unambiguous word again the same day: nothing new to record
    for _, resident in open_:
        check_in(resident_id=resident.id, via="sms", now=now)
    return texts.checked_in(names=[r.name for _, r in open_] if len(enrolled) > 1 else None)


def _asked_by_call(phone: str, enrolments: list[CheckinEnrolment], now: datetime) -> bool:
    """Whether the last thing said to this phone is an open missed-check-in alert's call asking it to press 1."""
    alert_ids = [e.last_alert_id for e in enrolments if e.last_alert_id]
    if not alert_ids:
        return False
    asked_at = db.session.scalar(
        select(EscalationStep.created_at).join(HelpAlert, HelpAlert.id == EscalationStep.alert_id)
        .where(EscalationStep.alert_id.in_(alert_ids), EscalationStep.to_address == phone,
               EscalationStep.channel == "voice", EscalationStep.created_at >= now - REPLY_WINDOW,
               HelpAlert.source == "checkin", HelpAlert.status.in_(("escalating", "accepted")))
        .order_by(EscalationStep.created_at.desc()).limit(1))
    if asked_at is None:
        return False
    said_since = db.session.scalar(
        select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.channel == "sms", Conversation.address == phone, Message.direction == "out",
               Message.created_at > asked_at).limit(1))
    return said_since is None


def check_in_from_menu(*, resident_id: int) -> str:
    """The WeChat menu's 平安打卡: what the account answers."""
    try:
        check_in(resident_id=resident_id, via="wechat")
    except Conflict:
        return texts.not_enrolled()
    return texts.checked_in()


# --- missed days ----------------------------------------------------------------------------------------------

def detect_missed(*, now: datetime | None = None) -> dict:
    """Mark every enrolment whose time passed today without a check-in (once a day), and queue their alerts.

    One UPDATE marks them all (the mark is the compare-and-set: a second detector marks nothing); the alerts are
    raised by `care.raise_missed` batch jobs on the workers. A batch lost with its worker is queued again.
    """
    now = now or utcnow()
    local = now.astimezone(_tz())
    today, midnight = local.date(), local.replace(hour=0, minute=0, second=0, microsecond=0)
    marked = db.session.scalars(
        update(CheckinEnrolment)
        .where(CheckinEnrolment.active.is_(True), CheckinEnrolment.due_time <= local.time().replace(tzinfo=None),
               or_(CheckinEnrolment.last_missed_on.is_(None), CheckinEnrolment.last_missed_on < today),
               CheckinEnrolment.enrolled_at < midnight, ~_checked_in_today(today))
        .values(last_missed_on=today, missed_at=now, last_alert_id=None)
        .returning(CheckinEnrolment.id)
    ).all()
    db.session.commit()
    lost = db.session.scalars(
        select(CheckinEnrolment.id).where(
            CheckinEnrolment.last_missed_on == today, CheckinEnrolment.last_alert_id.is_(None),
            CheckinEnrolment.missed_at <= now - LOST_BATCH_AFTER, ~_checked_in_today(today))
    ).all()
    db.session.rollback()
    bucket = int(now.timestamp()) // 15
    for why, ids in (("new", sorted(marked)), (f"again-{bucket}", sorted(lost))):
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            if not tasks.later("care.raise_missed", enrolment_ids=batch,
                               job_id=f"care-missed-{today}-{batch[0]}-{why}"):
                raise_missed(enrolment_ids=batch, now=now)  # Redis is gone: raise them here
    if marked or lost:
        log.info("check-in: %s missed today, %s queued again", len(marked), len(lost))
    return {"missed": len(marked), "requeued": len(lost)}


def _checked_in_today(today: date):
    return exists().where(and_(Checkin.resident_id == CheckinEnrolment.resident_id, Checkin.local_date == today))


def raise_missed(*, enrolment_ids: list[int], now: datetime | None = None) -> int:
    """Raise the alerts of the marked enrolments still without one, together; a rerun finds them done.

    The enrolments are claimed with `FOR UPDATE SKIP LOCKED` and given their alert in the transaction that raises
    it (help.raise_alerts), so two runs of a batch (a requeued batch, a retried job) raise nobody twice; a resident
    whose alert is open already (a press) joins it, as raise_alert does.
    """
    now = now or utcnow()
    claimed = db.session.execute(
        select(CheckinEnrolment.id, CheckinEnrolment.resident_id)
        .where(CheckinEnrolment.id.in_(enrolment_ids), CheckinEnrolment.last_alert_id.is_(None),
               CheckinEnrolment.last_missed_on.is_not(None),
               ~exists().where(and_(Checkin.resident_id == CheckinEnrolment.resident_id,
                                    Checkin.local_date == CheckinEnrolment.last_missed_on)))
        .order_by(CheckinEnrolment.id).with_for_update(skip_locked=True)
    ).all() if enrolment_ids else []
    if not claimed:
        db.session.rollback()
        return 0
    enrolment_of_resident = {resident_id: enrolment_id for enrolment_id, resident_id in claimed}

    def link(alerts: dict[int, int]) -> None:  # in raise_alerts' transaction: the alert and its mark commit together
        if alerts:
            alert_of = {enrolment_of_resident[resident_id]: alert_id for resident_id, alert_id in alerts.items()}
            db.session.execute(update(CheckinEnrolment).where(CheckinEnrolment.id.in_(alert_of))
                               .values(last_alert_id=case(alert_of, value=CheckinEnrolment.id))
                               .execution_options(synchronize_session=False))

    alerts = help_service.raise_alerts(resident_ids=list(enrolment_of_resident), source="checkin", now=now,
                                       lead_resident=True, before_commit=link)
    alert_ids = sorted(alerts.values())
    # After the calls' own jobs, on the outbound queue: a notice must never delay a first call.
    for start in range(0, len(alert_ids), NEWS_BATCH):
        chunk = alert_ids[start:start + NEWS_BATCH]
        if not tasks.later("care.tell_contacts_missed_many", alert_ids=chunk,
                           job_id=f"care-missed-news-{chunk[0]}-{len(chunk)}"):
            tell_contacts_missed_many(alert_ids=chunk)
    return len(alerts)


def tell_contacts_missed_many(*, alert_ids: list[int]) -> int:
    return sum(tell_contacts_missed(alert_id=alert_id) for alert_id in alert_ids)


def tell_contacts_missed(*, alert_id: int) -> int:
    alert = db.session.get(HelpAlert, alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    told = tell_contacts(resident=resident, body=texts.missed_contact(resident), event="未按时平安打卡",
                         dedup_key=f"checkin-missed:{alert_id}")
    return sum(1 for route in told.values() if route != "none")
