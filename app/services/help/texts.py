"""The words of one-key help: what contacts hear and read, and what the resident is told.

Kept short on purpose: any Chinese character makes an SMS UCS-2 (70 characters a part).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

OUTCOMES = {
    "false_alarm": "误报",
    "helped_at_home": "已上门处理",
    "taken_to_hospital": "已送医",
    "emergency_services": "已转120/110",
    "other": "其他",
}


def who(resident) -> str:
    return f"{resident.name}（{resident.address}）" if resident.address else resident.name


def call_intro(resident, source: str | None = None) -> str:
    if source == "checkin":
        return f"邻里平安打卡提醒。{resident.name}今天没有按时打卡，也没有接听电话，地址：{resident.address or '未登记'}。"
    return f"邻里紧急求助。{resident.name}按下了求助键，地址：{resident.address or '未登记'}。"


def call_prompt() -> str:
    return "您能前往帮助，请按1；不能前往，请按2。"


def call_no_key() -> str:
    return "没有收到按键，我们将联系下一位。"


def call_accepted(resident) -> str:
    phone = f"，老人电话{_spell(resident.phone)}" if resident.phone else ""
    return f"谢谢，已确认由您前往。地址：{resident.address or '未登记'}{phone}。"


def call_taken() -> str:
    return "这条求助已有人接受，谢谢您。"


def call_passed() -> str:
    return "好的，我们将联系下一位。"


def sms_request(resident, short_code: str) -> str:
    return f"【邻里】紧急求助：{who(resident)}按了求助键。能前往请回复1或收到（或{short_code}）。"


def wechat_request(resident) -> str:
    return f"【邻里紧急求助】{who(resident)}按下了求助键。请接听我们的来电按1，或回复短信1，接受前往。"


def sms_confirm_winner(resident) -> str:
    phone = f"，电话{resident.phone}" if resident.phone else ""
    return f"【邻里】已确认由您前往：{who(resident)}{phone}。"


def sms_taken(resident, winner: str) -> str:
    return f"【邻里】{resident.name}的求助已由{winner}接受，无需再前往，谢谢。"


def sms_closed() -> str:
    return "【邻里】这条求助已处理完毕，谢谢。"


@dataclass(frozen=True)
class Sms:
    """An SMS both ways: `body` as Twilio sends it, `template` + `params` for providers that send only approved
    templates (Aliyun: ALIYUN_SMS_TEMPLATES maps the key to its SMS_ code; docs/help.md lists the words)."""

    template: str
    body: str
    params: dict[str, str] = field(default_factory=dict)


def _place(resident) -> dict[str, str]:
    return {"name": resident.name, "address": resident.address or "未登记"}


def request_sms(resident, short_code: str) -> Sms:
    return Sms("help_request", sms_request(resident, short_code), {**_place(resident), "code": short_code})


def taken_sms(resident, winner: str) -> Sms:
    return Sms("help_taken", sms_taken(resident, winner), {"name": resident.name, "winner": winner})


def confirm_sms(resident) -> Sms:
    return Sms("help_confirm", sms_confirm_winner(resident), {**_place(resident), "phone": resident.phone or "未登记"})


def closed_sms() -> Sms:
    return Sms("help_closed", sms_closed())


def call_speech(resident, script: str = "help") -> dict[str, str]:
    """The variables of the approved call intro of a script (Aliyun's TTS templates; Twilio's TwiML says call_intro,
    or care's words to the resident): the resident's own check-in call names them only."""
    return {"name": resident.name} if script == "resident" else _place(resident)


def update_fields(resident, body: str) -> dict[str, str]:
    """The fields of the "help_update" subscribe message: who, what (WeChat's thing.DATA holds 20 characters), when."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    return {"name": resident.name[:20], "update": body[:20], "time": now.strftime("%Y-%m-%d %H:%M")}


def family_raised(resident) -> str:
    return f"【邻里】{resident.name}发起了一键求助，我们正在依次电话联系紧急联系人。"


def family_accepted(resident, winner: str) -> str:
    return f"【邻里】{resident.name}的求助已由{winner}接受，正在前往。"


def resident_received() -> str:
    return "已收到您的求助，正在联系您的紧急联系人，请保持电话畅通。"


def resident_coming(winner: str) -> str:
    return f"{winner}已接到您的求助，正在赶来，请保持电话畅通。"


def _spell(phone: str) -> str:
    # Spaced digits make the text-to-speech read a number digit by digit, not as one huge number.
    digits = phone.removeprefix("+86")
    return " ".join(digits)
