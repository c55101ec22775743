"""The words of elder care: device outages, the daily check-in, and what families read (short: SMS is UCS-2)."""
from __future__ import annotations

REASONS = {"silent": "长时间没有信号", "battery": "电量低"}


def outage_subject(resident, reason: str) -> str:
    return f"求助按钮{REASONS[reason]}：{resident.name}（{resident.address or '地址未登记'}）"


def outage_contact(resident, reason: str) -> str:
    return f"【邻里】{resident.name}的一键求助按钮{REASONS[reason]}，可能无法求助，请帮忙检查或充电。"


def recovered(battery: int | None) -> str:
    return "求助按钮已恢复心跳" + (f"（电量{battery}%）" if battery is not None else "")


def checked_in(names: list[str] | None = None) -> str:
    """The reply to a check-in; `names` when one phone checked in several residents (a shared home phone)."""
    if names:
        return f"已收到{'、'.join(names)}今天的平安打卡，祝您平安健康！"
    return "已收到您今天的平安打卡，祝您平安健康！"


def already_checked_in() -> str:
    return "您今天已经打过平安卡了，谢谢！"


def not_enrolled() -> str:
    return "您还没有开通平安打卡，请联系社区工作人员开通。"


def resident_call_intro(resident) -> str:
    return f"{resident.name}您好，这里是邻里平安打卡。您今天还没有打卡。"


def resident_call_prompt() -> str:
    return "平安请按1。需要帮助请按2。"


def resident_call_thanks() -> str:
    return "已为您打卡，祝您平安。再见。"


def resident_call_help() -> str:
    return "好的，我们马上联系您的家人和社区工作人员。"


def missed_contact(resident) -> str:
    return f"【邻里】{resident.name}今天没有按时平安打卡。我们正在电话联系本人，未确认平安将依次联系家人和社区。"


def alert_contact(resident) -> str:
    return f"【邻里】{resident.name}发起了一键求助，我们正在依次电话联系。"


def accepted_contact(resident, winner: str) -> str:
    return f"【邻里】{resident.name}的求助已由{winner}接受，正在前往。"


def missed_made_good(resident) -> str:
    return f"【邻里】{resident.name}已补打平安卡，平安无事。"
