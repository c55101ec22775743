"""Appointment reminders, the evening before and two hours before, sent through the outbox.

Each carries the "booking_reminder" subscribe template and its fields: delivery sends it as a WeChat subscribe
message when the resident granted one, else the text by 客服 or SMS (docs/booking.md, docs/channels.md).

The appointments are the schedule: a sweeper finds due reminders in the database, and the
reminded_* column is set in the same commit as the outbox row, so a restarted worker neither
loses a reminder nor sends one twice. Cancelled appointments are never selected.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.core.extensions import db
from app.models import Appointment, Conversation, OutboundMessage, Slot
from app.models.base import utcnow
from app.services import outbox
from app.services.booking.appointments import lock_appointment, one_transaction
from app.services.booking.calendar import SOON_REMINDER_BEFORE, WECHAT_TIME, evening_reminder_at, format_local

log = logging.getLogger(__name__)

KINDS = ("evening", "soon")
TEMPLATE = "booking_reminder"
# The evening reminder is at most a day and a half ahead of the visit; look no further.
LOOKAHEAD = timedelta(hours=36)


def due_reminders(*, now: datetime | None = None) -> list[tuple[int, str]]:
    """(appointment id, kind) of every reminder due at `now`, earliest visit first."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Appointment.id, Appointment.local_date, Appointment.created_at, Appointment.reminded_evening_at,
               Appointment.reminded_soon_at, Slot.start_at)
        .join(Appointment.slot)
        .where(Appointment.status == "booked", Slot.start_at > now, Slot.start_at <= now + LOOKAHEAD,
               or_(Appointment.reminded_evening_at.is_(None), Appointment.reminded_soon_at.is_(None)))
        .order_by(Slot.start_at, Appointment.id)
    )
    due = []
    for row in rows:
        kind = _due_kind(row, now)
        if kind:
            due.append((row.id, kind))
    return due


def send_due_reminders(*, now: datetime | None = None) -> int:
    """The sweeper's work: send every due reminder; returns how many messages were queued."""
    now = now or utcnow()
    sent = 0
    for appointment_id, kind in due_reminders(now=now):
        try:
            sent += send_reminder(appointment_id=appointment_id, kind=kind, now=now) is not None
        except Exception:  # one broken row must not hold back everybody else's reminders
            db.session.rollback()
            log.exception("reminder failed", extra={"appointment_id": appointment_id, "kind": kind})
    return sent


def send_reminder(*, appointment_id: int, kind: str, now: datetime | None = None) -> OutboundMessage | None:
    """Queue one reminder unless it was sent already or the appointment is no longer booked."""
    if kind not in KINDS:
        raise ValueError(f"unknown reminder kind {kind!r}")
    now = now or utcnow()
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.status != "booked":
        return None
    conversation = outbox.conversation_to_reach(resident_id=appointment.booked_by_resident_id)  # may commit
    column = f"reminded_{kind}_at"
    message = None
    with one_transaction():
        appointment = lock_appointment(appointment_id=appointment_id)
        if appointment.status != "booked" or getattr(appointment, column) is not None:
            return None
        setattr(appointment, column, now)
        if conversation is None:
            log.warning("no channel to remind on", extra={"appointment_id": appointment_id})
        else:
            message = _stage(appointment, conversation, kind)
    if message is not None:
        outbox.dispatch(outbound_ids=[message.id])
    return message


def _due_kind(row, now: datetime) -> str | None:
    if now >= row.start_at - SOON_REMINDER_BEFORE:
        # Close to the visit only the short reminder makes sense; a missed evening one is skipped.
        return None if row.reminded_soon_at else "soon"
    evening_at = evening_reminder_at(row.local_date)
    # Booked after the evening reminder time: the booking confirmation already told them.
    if row.reminded_evening_at is None and now >= evening_at and row.created_at < evening_at:
        return "evening"
    return None


def _stage(appointment: Appointment, conversation: Conversation, kind: str) -> OutboundMessage | None:
    try:
        with db.session.begin_nested():
            message = outbox.stage_message(conversation_id=conversation.id, body=_body(appointment, kind),
                                           kind="reminder", dedup_key=f"reminder:{appointment.id}:{kind}",
                                           template=TEMPLATE, fields=template_fields(appointment))
            db.session.flush()
        return message
    except IntegrityError:  # queued before; the dedup key is the outbox's own guard
        return None


def template_fields(appointment: Appointment) -> dict:
    """The reminder's subscribe-message fields (mapped to the template's keywords by WECHAT_SUBSCRIBE_TEMPLATES)."""
    return {"patient": appointment.patient.name, "time": format_local(appointment.slot.start_at, WECHAT_TIME),
            "place": f"{appointment.department.hospital.name}{appointment.department.name}",
            "seat": f"{appointment.seat_no}号"}


def _body(appointment: Appointment, kind: str) -> str:
    slot = appointment.slot
    place = f"{appointment.department.hospital.name}{appointment.department.name}"
    when = format_local(slot.start_at, "%H:%M")
    day = "明天" if kind == "evening" else format_local(slot.start_at, "%m月%d日")
    # Short: one UCS-2 SMS part holds 70 characters.
    return f"【邻里】就诊提醒：{appointment.patient.name}{day}{when}在{place}就诊（{appointment.seat_no}号），请带身份证按时到达。"
