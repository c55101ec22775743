"""The trained Rasa bot answers residents through the app's signed WeChat webhook, with real effects."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from datetime import time as clock
from itertools import count
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import select

from app.core.extensions import db
from app.models import Appointment, FaqArticle, HelpAlert, Message, Ticket, TicketEvent
from tests.factories import (
    ChannelIdentityFactory,
    CommunityFactory,
    DepartmentFactory,
    DoctorFactory,
    HelpContactFactory,
    PatientFactory,
    ResidentFactory,
    SlotFactory,
)
from tests.helpers.wechat import plain_query, text_xml

SHANGHAI = ZoneInfo("Asia/Shanghai")
_msg_ids = count(int(time.time() * 1000))


def resident_on_wechat(openid: str):
    resident = ResidentFactory(community=CommunityFactory())
    ChannelIdentityFactory(resident=resident, channel="wechat", external_id=openid)
    PatientFactory(resident=resident, name=resident.name)
    db.session.commit()
    return resident


def say(stack, openid: str, text: str) -> str:
    """Send one message as the resident; the passive reply's text ('' when WeChat got `success`)."""
    response = requests.post(f"{stack['app_url']}/wechat?{plain_query()}", data=text_xml(openid, text, next(_msg_ids)),
                             headers={"Content-Type": "text/xml"}, timeout=60)
    assert response.status_code == 200, response.text
    found = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", response.text, re.S)
    return found.group(1) if found else ""


def test_a_resident_books_a_real_slot_by_chatting(bot_stack, committed):
    tomorrow = datetime.now(SHANGHAI).date() + timedelta(days=1)
    department = DepartmentFactory(name="内科")
    doctor = DoctorFactory(department=department, name="赵医生")
    first = SlotFactory(doctor=doctor, department=department, day=tomorrow, at=clock(9, 0), capacity=2)
    SlotFactory(doctor=doctor, department=department, day=tomorrow, at=clock(9, 30), capacity=2)
    resident = resident_on_wechat("o_bot_booking")

    assert "科" in say(bot_stack, "o_bot_booking", "我要挂号")
    assert "哪天" in say(bot_stack, "o_bot_booking", "内科")
    offer = say(bot_stack, "o_bot_booking", "明天")
    assert "09:00" in offer and "1" in offer
    assert "确认" in say(bot_stack, "o_bot_booking", "1")
    done = say(bot_stack, "o_bot_booking", "是的")
    assert "预约成功" in done

    db.session.expire_all()
    appointment = db.session.scalar(select(Appointment).where(Appointment.booked_by_resident_id == resident.id))
    assert appointment is not None and appointment.status == "booked"
    assert appointment.slot_id == first.id
    db.session.refresh(first)
    assert first.booked_count == 1


def test_faq_answers_come_from_the_knowledge_base_staff_edit(bot_stack, committed):
    db.session.add(FaqArticle(topic="elderly_card", title="老年卡",
                              answer="测试答案：带身份证到社区事务受理服务中心办理老年卡。"))
    resident_on_wechat("o_bot_faq")
    assert "测试答案" in say(bot_stack, "o_bot_faq", "老年卡怎么办")


def test_asking_for_a_person_opens_a_ticket_and_the_bot_then_stays_silent(bot_stack, committed):
    resident = resident_on_wechat("o_bot_handoff")
    assert "人工" in say(bot_stack, "o_bot_handoff", "转人工")
    db.session.expire_all()
    ticket = db.session.scalar(select(Ticket).where(Ticket.resident_id == resident.id))
    assert ticket is not None and ticket.status == "open"

    bot_messages_before = _bot_messages(resident.id)
    reply = say(bot_stack, "o_bot_handoff", "我家楼道灯坏了")
    assert reply == "" or "人工" in reply  # at most the app's note that a person will answer, never the bot
    assert _bot_messages(resident.id) == bot_messages_before
    db.session.expire_all()
    events = db.session.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == ticket.id,
                                                               TicketEvent.kind == "message_in")).all()
    assert "我家楼道灯坏了" in events


def test_a_call_for_help_raises_an_alert_at_once(bot_stack, committed):
    resident = resident_on_wechat("o_bot_help")
    HelpContactFactory(resident_id=resident.id, position=1, relation="family")
    db.session.commit()
    reply = say(bot_stack, "o_bot_help", "救命 我摔倒了起不来")
    assert "联系" in reply or "通知" in reply
    db.session.expire_all()
    alert = db.session.scalar(select(HelpAlert).where(HelpAlert.resident_id == resident.id))
    assert alert is not None and alert.status == "escalating"


def _bot_messages(resident_id: int) -> int:
    from app.models import Conversation

    return len(db.session.scalars(
        select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.resident_id == resident_id, Message.author == "bot")).all())


def test_the_real_nlu_classifies_nonsense_as_fallback_for_the_reports(bot_stack):
    from integrations.rasa import RasaRestClient

    nlu = RasaRestClient(bot_stack["rasa_url"])
    assert nlu.parse("老年卡怎么办") == "faq"
    assert nlu.parse("我要挂号") == "book_appointment"
