"""Messages around an alert that are not escalation attempts: the resident's notices and the contacts' news."""
from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core import tasks, transports
from app.core.config import setting
from app.core.errors import NotFound
from app.core.extensions import db
from app.models import EscalationStep, HelpAlert, HelpContact, Resident, Staff
from app.services import outbox
from app.services.help import texts
from app.services.help.chains import chain_of, channels_of
from app.services.help.events import record
from integrations.telephony import TextMessage

log = logging.getLogger(__name__)

# Attempts that never reached their contact: nobody is told "taken" for them.
REACHED_NOT = ("pending", "skipped", "send_failed")


def tell_resident(*, alert_id: int, body: str, key: str) -> bool:
    """Queue a notice to the resident on their own channel (outbox), once per alert and key.

    Never raises: it runs after an acceptance or a step is committed, and a failing notice must not
    turn a won acceptance into an error the contact hears, nor stop the chain.
    """
    try:
        return _tell_resident(alert_id, body, key)
    except Exception:  # noqa: BLE001
        log.exception("could not queue the notice %r of alert %s", key, alert_id)
        db.session.rollback()
        alert = db.session.get(HelpAlert, alert_id)
        record(alert.ticket_id, f"通知居民失败（系统错误）：{body}")
        db.session.commit()
        return False


def _tell_resident(alert_id: int, body: str, key: str) -> bool:
    alert = db.session.get(HelpAlert, alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    other = "sms" if resident.preferred_channel == "wechat" else "wechat"
    for channel in (resident.preferred_channel, other):
        try:
            conversation = outbox.conversation_for(resident_id=resident.id, channel=channel)
        except NotFound:
            continue
        # After a menu tap WeChat's 客服 window may be closed: the outbox then sends the resident's granted
        # subscribe message "help_update", or an SMS (docs/help.md, "Telling the resident").
        outbox.queue_message(conversation_id=conversation.id, body=body, kind="notice",
                             dedup_key=f"help:{alert_id}:{key}", ticket_id=alert.ticket_id,
                             template="help_update", fields=texts.update_fields(resident, body))
        return True
    record(alert.ticket_id, f"无法通知居民（没有微信或短信身份）：{body}")
    db.session.commit()
    return False


def winner_name(alert: HelpAlert) -> str:
    if alert.accepted_contact_id:
        return db.session.get(HelpContact, alert.accepted_contact_id).name
    if alert.accepted_staff_id:
        return "街道工作人员" + db.session.get(Staff, alert.accepted_staff_id).display_name
    return "工作人员"


def queue_acceptance_news(*, alert_id: int) -> None:
    """After a commit that accepted the alert: resident told who is coming, contacts told it is taken."""
    alert = db.session.get(HelpAlert, alert_id)
    tell_resident(alert_id=alert_id, body=texts.resident_coming(winner_name(alert)), key="accepted")
    queue_family_news(alert_id=alert_id, event="accepted")
    if not tasks.later("help.tell_contacts_taken", alert_id=alert_id, job_id=f"help-{alert_id}-taken"):
        tell_contacts_taken_now(alert_id=alert_id)


def queue_family_news(*, alert_id: int, event: str) -> None:
    """After a commit that raised ("raised") or accepted ("accepted") the alert: the family's WeChat notices."""
    if not tasks.later("help.tell_family", alert_id=alert_id, event=event, job_id=f"help-{alert_id}-family-{event}"):
        tell_family(alert_id=alert_id, event=event)


def tell_family(*, alert_id: int, event: str) -> int:
    """A notice to each family contact (not the staff group): by WeChat to those who follow the account (subscribe
    message `help_update`, else 客服 in the 48-hour window), else by SMS (issue 22); the number reached.

    No SMS to a contact the chain texts about this alert (its SMS asks them to come: a second one would drown it) nor,
    once accepted, to the acceptor or to a contact the chain reached (tell_contacts_taken_now tells them it is taken).
    docs/help.md, "Family notices".
    """
    alert = db.session.get(HelpAlert, alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    if event == "accepted":
        body, status = texts.family_accepted(resident, winner_name(alert)), "已接受"
    else:
        body, status = texts.family_raised(resident), "呼叫中"
    contacts = db.session.scalars(
        select(HelpContact).where(HelpContact.resident_id == resident.id, HelpContact.position > 0,
                                  HelpContact.relation != "staff")
        .order_by(HelpContact.position)
    ).all()
    told_by_chain = _reached_by_chain(alert) if event == "accepted" else _texted_by_chain(alert, contacts)
    when = (alert.accepted_at if event == "accepted" else alert.created_at) or alert.created_at
    fields = {"resident": resident.name, "status": status,
              "time": when.astimezone(ZoneInfo(setting("TIMEZONE"))).strftime("%Y年%m月%d日 %H:%M")}
    reached = 0
    for contact in contacts:
        if event == "accepted" and contact.id == alert.accepted_contact_id:
            continue  # the acceptor knows
        phone = None if contact.id in told_by_chain else contact.phone
        if not contact.wechat_openid and not phone:
            continue
        route = outbox.notify_contact(openid=contact.wechat_openid, phone=phone, template="help_update", fields=fields,
                                      body=body, dedup_key=f"help-family:{alert_id}:{event}:{contact.id}")
        reached += route != "none"
    return reached


def _texted_by_chain(alert: HelpAlert, contacts: list[HelpContact]) -> set[int]:
    """Contacts with an SMS attempt of this alert (on its way or sent) and, before the first step, the chain's first
    contact when that step texts them (the notice job and the first step are queued together at the raise)."""
    texted = set(db.session.scalars(
        select(EscalationStep.contact_id).where(EscalationStep.alert_id == alert.id, EscalationStep.channel == "sms",
                                                EscalationStep.contact_id.is_not(None),
                                                EscalationStep.status.notin_(("skipped", "send_failed")))))
    if alert.status == "escalating" and (alert.round, alert.step) == (1, 0) and not alert.lead_resident:
        first = next((c for c in contacts if c.id == alert.lead_contact_id), None) \
            or next(iter(chain_of(resident_id=alert.resident_id)), None)
        if first is not None and "sms" in channels_of(first):
            texted.add(first.id)
    return texted


def _reached_by_chain(alert: HelpAlert) -> set[int]:
    """Contacts tell_contacts_taken_now tells that the alert is taken (an attempt that reached them)."""
    return set(db.session.scalars(
        select(EscalationStep.contact_id).where(EscalationStep.alert_id == alert.id,
                                                EscalationStep.contact_id.is_not(None),
                                                EscalationStep.status.notin_(REACHED_NOT))))


def tell_contacts_taken_now(*, alert_id: int) -> int:
    """SMS (or WeChat) every other contact already reached that the alert is taken; the winner by SMS a recap."""
    alert = db.session.get(HelpAlert, alert_id)
    resident = db.session.get(Resident, alert.resident_id)
    winner = winner_name(alert)
    reached = db.session.execute(
        select(EscalationStep.contact_id, EscalationStep.channel, EscalationStep.to_address, EscalationStep.id)
        .where(EscalationStep.alert_id == alert_id, EscalationStep.status.notin_(REACHED_NOT))
        .order_by(EscalationStep.id)
    ).all()
    winner_phone = None
    if alert.accepted_contact_id:
        winner_phone = db.session.get(HelpContact, alert.accepted_contact_id).phone
    told: set[str] = set()
    for contact_id, channel, address, _ in reached:
        if address in told or (contact_id == alert.accepted_contact_id and contact_id is not None):
            continue
        if channel in ("voice", "sms") and address == winner_phone:
            continue
        told.add(address)
        _send_quietly(channel, address, texts.taken_sms(resident, winner))
    if winner_phone and alert.accepted_via == "sms":
        _send_quietly("sms", winner_phone, texts.confirm_sms(resident))
    return len(told)


def send_contact_sms(*, phone: str, body: str, template: str | None = None, params: dict | None = None) -> None:
    _send_quietly("sms", phone, texts.Sms(template or "", body, params or {}))


def _send_quietly(channel: str, address: str, sms: texts.Sms) -> None:
    # News about an alert is a courtesy; a failure is logged, it must not undo or block the acceptance.
    try:
        if channel == "wechat":
            transports.get().wechat.send_text(address, sms.body)
        else:
            transports.telephony_for(address).send_text(
                TextMessage(to=address, body=sms.body, template=sms.template, params=sms.params))
    except Exception as exc:  # noqa: BLE001
        log.warning("help notice to %s by %s failed: %s", address, channel, exc)
