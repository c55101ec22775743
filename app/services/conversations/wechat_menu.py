"""What the official account says to a subscription and to its menu (one-key help, my appointments, a person)."""
from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from app.core.config import setting
from app.core.errors import DomainError
from app.services import booking, care, residents, tickets
from app.services import help as help_service

log = logging.getLogger(__name__)

WELCOME = ("您好，欢迎关注“邻里”街道服务号！我可以帮您：\n"
           "1. 社区医院预约挂号，查看或取消预约（菜单“我的预约”）\n"
           "2. 查询办事指南：社保、居住证、养老补贴等\n"
           "3. 一键求助：菜单“一键求助”立即联系您的紧急联系人\n"
           "4. 联系工作人员：菜单“联系工作人员”\n"
           "直接发文字或语音给我就可以。")
CAPABILITIES = ("抱歉，我暂时只能看懂文字和语音。您可以直接打字告诉我：预约挂号、查询办事指南，"
                "或者说“转人工”联系工作人员。")
ASK_TO_TYPE = "抱歉，没能听清您的语音，请打字告诉我您需要什么。"
HELP_RAISED = "已收到您的求助，正在依次联系您的紧急联系人和社区工作人员，请保持电话畅通。"
STAFF_CALLED = "已为您转接工作人员，请直接留言，工作人员会尽快回复您。"
NO_APPOINTMENTS = "您目前没有待就诊的预约。发送“挂号”即可预约社区医院。"


def answer_event(*, resident, conversation, event: str, key: str) -> list[str]:
    """What the account says to a subscription or a menu click."""
    if event == "subscribe":
        residents.set_wechat_subscribed(resident_id=resident.id, subscribed=True)
        return [WELCOME]
    if event == "unsubscribe":
        residents.set_wechat_subscribed(resident_id=resident.id, subscribed=False)
        return []  # WeChat delivers nothing to someone who left
    handler = MENU.get(key)
    return handler(resident, conversation) if handler else []


def _one_key_help(resident, conversation) -> list[str]:
    try:
        help_service.raise_alert(resident_id=resident.id, source="wechat_menu")
        return [HELP_RAISED]
    except DomainError as exc:  # e.g. no contact chain yet: a person must step in, not silence
        log.warning("help alert from the menu refused: %s", exc.message)
    _staff_ticket(resident, conversation, subject="一键求助（微信菜单）", priority="urgent", category="help")
    return [HELP_RAISED]


def _my_appointments(resident, conversation) -> list[str]:
    appointments = booking.list_appointments(resident_id=resident.id, active_only=True)
    if not appointments:
        return [NO_APPOINTMENTS]
    tz = ZoneInfo(setting("TIMEZONE"))
    lines = ["您的预约："]
    for n, appt in enumerate(appointments[:5], 1):
        start = appt.slot.start_at.astimezone(tz)
        lines.append(f"{n}. {start:%m月%d日 %H:%M} {appt.department.name} {appt.slot.doctor.name}"
                     f"（就诊人：{appt.patient.name}）")
    lines.append("如需取消，请回复“取消预约”。")
    return ["\n".join(lines)]


def _talk_to_staff(resident, conversation) -> list[str]:
    _staff_ticket(resident, conversation, subject="居民通过菜单要求人工服务", priority="normal", category="handoff")
    return [STAFF_CALLED]


def _staff_ticket(resident, conversation, *, subject: str, priority: str, category: str) -> None:
    street_id = residents.street_of(resident)
    if street_id is None:
        log.error("no street configured; ticket %r not opened", subject)
        return
    tickets.open_ticket(street_id=street_id, source="resident", subject=subject, priority=priority,
                        category=category, conversation_id=conversation.id, resident_id=resident.id)


def _daily_checkin(resident, conversation) -> list[str]:
    return [care.check_in_from_menu(resident_id=resident.id)]


MENU = {"ONE_KEY_HELP": _one_key_help, "MY_APPOINTMENTS": _my_appointments, "TALK_TO_STAFF": _talk_to_staff,
        "DAILY_CHECKIN": _daily_checkin}
