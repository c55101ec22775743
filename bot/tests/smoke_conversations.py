"""Live conversations through Rasa's REST channel, the action server and the fake app.

Run by scripts/smoke_test.sh with everything started; each step checks a piece of the reply.
Today is pinned to Wednesday 2025-03-12 (LINLI_TODAY), so dates are deterministic.
"""
from __future__ import annotations

import sys

from converse import say  # same folder: run as a script

CONVERSATIONS = {
    "book with an FAQ in the middle": [
        ("我要挂号", "哪个科"),
        ("服务中心几点上班", "9:00-17:00"),
        ("内科", "哪天"),
        ("明天", "1. 08:30 张伟"),
        ("第二个", "确认吗"),
        ("是", "预约成功：内科 3月13日(周四) 09:00 张伟"),
        ("我的预约", "1. 内科 3月13日(周四) 09:00"),
        ("取消预约", "确定要取消"),
        ("是的", "已取消"),
    ],
    "half day, change of department, stop": [
        ("帮我约周五下午的外科", "1. 13:30 李强"),
        ("1", "外科 3月14日(周五) 13:30"),
        ("还是换成口腔科吧", "口腔科还有这些号"),
        ("算了", "这次不约了"),
    ],
    "a Sunday has no slots": [
        ("挂个眼科", "哪天"),
        ("礼拜天", "没有空号"),
        ("3号上午", "4月3日(周四)眼科"),
        ("下午", "1. 13:30 李强"),
    ],
    "a picked slot is held, then booked": [
        ("约明天的儿科", "1. 08:30 张伟"),
        ("1", "保留5分钟"),
        ("是", "预约成功：儿科 3月13日(周四) 08:30 张伟"),
    ],
    "thinking it over neither books nor cancels": [
        ("约明天的皮肤科", "1. 08:30 张伟"),
        ("1", "保留5分钟"),
        ("这个嘛", "不着急"),
        ("是", "预约成功：皮肤科 3月13日(周四) 08:30 张伟"),
        ("取消预约", "确定要取消"),
        ("让我想想", "预约先给您留着"),
        ("是", "已取消"),
    ],
    "a half yes neither books nor cancels": [
        # 那个那个 reads as affirm below actions/confirmation.CLEAR_YES_CONFIDENCE (asserted by the first reply)
        ("约明天的骨科", "1. 08:30 张伟"),
        ("1", "保留5分钟"),
        ("那个那个", "没听清您是不是确认"),
        ("对的", "预约成功：骨科 3月13日(周四) 08:30 张伟"),
        ("取消预约", "确定要取消"),
        ("那个那个", "预约先给您留着"),
        ("对的", "已取消"),
    ],
    "a full day offers the waitlist": [
        ("我要挂明天的全科", "要排队等候吗"),
        ("好", "现在排第1位"),
        ("我排到第几了", "全科：排第1位"),
        ("不排了", "已退出3月13日(周四)全科的排队"),
        ("确认候补", "没有候补到的号"),
    ],
    "help at once": [("救命，我摔倒了", "已通知")],
    "complaint goes to a person": [("我要投诉窗口的人", "转人工")],
    "two unclear messages go to a person": [("那个啥", "没看明白"), ("啥玩意儿", "转人工")],
    "out of scope": [("讲个笑话", "我可以")],
}


def main(url: str) -> int:
    passed = failed = 0
    for number, (name, steps) in enumerate(CONVERSATIONS.items()):
        sender = f"conv-smoke-{number}"
        for text, expected in steps:
            reply = "\n".join(say(url, sender, text))
            if expected in reply:
                passed += 1
            else:
                failed += 1
                print(f"FAIL [{name}] {text!r}: expected {expected!r} in {reply!r}")
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5105"))
