"""Family notices: contacts who follow the account get WeChat notices (subscribe message when granted, else 客服) of
an alert, its acceptance, a missed check-in and a dead button; the others an SMS of what concerns elder care.
Real wechatpy and twilio clients against the stubs on loopback."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import DeviceHealth, HelpAlert
from app.models.base import utcnow
from app.services import care, outbox
from app.services.care import checkins
from app.services.help import alerts as help_alerts
from app.services.help import escalation
from app.services.help import notices as help_notices
from integrations.twilio import TwilioTransport
from integrations.wechat import WeChatClientSender
from tests.factories import ResidentFactory, StaffFactory
from tests.helpers.help import add_contact, make_device

HELP_TPL = "tplHelpUpdate_care1"
CARE_TPL = "tplCareNotice_care2"
TEMPLATES = {"help_update": {"id": HELP_TPL, "fields": {"thing1": "resident", "phrase2": "status", "time3": "time"}},
             "care_notice": {"id": CARE_TPL, "fields": {"thing1": "resident", "thing2": "event", "time3": "time"}}}
FOLLOWER = "oFamilyFollower000001"


@pytest.fixture
def stubs(app, help_db, wechat_stub, twilio_stub, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_SUBSCRIBE_TEMPLATES", json.dumps(TEMPLATES))
    wechat_stub.add_subscribe_template(HELP_TPL, "thing1", "phrase2", "time3")
    wechat_stub.add_subscribe_template(CARE_TPL, "thing1", "thing2", "time3")
    current = transports.use(app)
    previous = (current.wechat, current.twilio)
    transports.use(app, wechat=WeChatClientSender(wechat_stub.app_id, wechat_stub.secret, wechat_stub.api_base,
                                                  get_redis(), timeout=2),
                   twilio=TwilioTransport(twilio_stub.account_sid, twilio_stub.auth_token, twilio_stub.from_number,
                                          twilio_stub.base_url, timeout=2))
    yield wechat_stub, twilio_stub
    transports.use(app, wechat=previous[0], twilio=previous[1])


def _grant(openid: str, template_id: str, wechat_stub, create_time: int) -> None:
    wechat_stub.grant_subscribe(openid, template_id)
    assert outbox.record_subscribe_event(openid=openid, event="subscribe_msg_popup_event", create_time=create_time,
                                         entries=[{"TemplateId": template_id, "SubscribeStatusString": "accept"}])


def _family():
    elder = ResidentFactory(is_elderly=True, name="王阿姨")
    db.session.commit()
    follower = add_contact(elder.id, 1, channels="voice,wechat", wechat_openid=FOLLOWER, name="女儿")
    texter = add_contact(elder.id, 2, channels="voice,sms", name="儿子")
    add_contact(elder.id, 3, channels="voice", relation="staff", name="值班室")
    return elder, follower, texter


def test_family_contacts_hear_of_an_alert_its_acceptance_a_missed_check_in_and_a_dead_button(stubs):
    wechat_stub, twilio_stub = stubs
    elder, follower, texter = _family()
    _grant(FOLLOWER, HELP_TPL, wechat_stub, 1_700_000_001)
    _grant(FOLLOWER, CARE_TPL, wechat_stub, 1_700_000_002)

    alert = help_alerts.raise_alert(resident_id=elder.id, source="console")
    assert help_notices.tell_family(alert_id=alert.id, event="raised") == 2  # the follower by WeChat, the son by SMS
    assert help_notices.tell_family(alert_id=alert.id, event="raised") == 2  # a rerun sends nothing more
    (raised,) = wechat_stub.subscribe_messages()
    assert raised["touser"] == FOLLOWER and raised["template_id"] == HELP_TPL
    assert raised["data"]["thing1"] == {"value": "王阿姨"} and raised["data"]["phrase2"]["value"] == "呼叫中"
    assert [(m["to"], m["body"]) for m in twilio_stub.sent_messages()] == [
        (texter.phone, "【邻里】王阿姨发起了一键求助，我们正在依次电话联系紧急联系人。")]

    assert help_alerts.accept(alert_id=alert.id, via="sms", contact_id=texter.id)
    assert help_notices.tell_family(alert_id=alert.id, event="accepted") == 1  # the acceptor is not told his own news
    kefu = [c["json"]["text"]["content"] for c in wechat_stub.calls_to("/cgi-bin/message/custom/send")]
    assert kefu == ["【邻里】王阿姨的求助已由儿子接受，正在前往。"]  # the help_update grant was spent: 客服
    assert len(twilio_stub.sent_messages()) == 1

    db.session.execute(update(HelpAlert).values(status="resolved"))
    db.session.commit()
    checkins.enrol(resident_id=elder.id, due_time="00:00", now=utcnow() - timedelta(days=2))
    assert care.detect_missed()["missed"] == 1
    care.raise_missed(enrolment_ids=[checkins.enrolment_of(resident_id=elder.id).id])
    missed_alert = db.session.get(HelpAlert, checkins.enrolment_of(resident_id=elder.id).last_alert_id)
    assert checkins.tell_contacts_missed(alert_id=missed_alert.id) == 2
    care_sent = [m for m in wechat_stub.subscribe_messages() if m["template_id"] == CARE_TPL]
    assert [m["data"]["thing2"]["value"] for m in care_sent] == ["未按时平安打卡"]
    assert [(m["to"], "没有按时平安打卡" in m["body"]) for m in twilio_stub.sent_messages()[1:]] == [(texter.phone, True)]

    make_device(elder.id, device_uid="DEV-FAMILY")
    care.sweep_devices()  # registers its health row
    db.session.execute(update(DeviceHealth).values(watched_since=utcnow() - timedelta(days=1)))
    db.session.commit()
    assert care.sweep_devices()["opened"] == 1
    assert [m["body"] for m in twilio_stub.sent_messages()][-1].startswith("【邻里】王阿姨的一键求助按钮长时间没有信号")
    kefu = [c["json"]["text"]["content"] for c in wechat_stub.calls_to("/cgi-bin/message/custom/send")]
    assert "长时间没有信号" in kefu[-1]  # the care_notice grant was spent too: 客服 inside the window


@pytest.mark.parametrize("notice_first", [True, False], ids=["notice-before-first-step", "notice-after-first-step"])
def test_a_family_contact_without_wechat_is_texted_when_an_alert_is_raised_and_when_it_is_accepted(stubs, notice_first):
    """Issue 22's "SMS otherwise": a contact with no WeChat route gets the notices by SMS, except one the chain is
    texting about this alert at that moment (its SMS asks them to come), who gets the chain's SMS alone."""
    wechat_stub, twilio_stub = stubs
    elder = ResidentFactory(is_elderly=True, name="王阿姨")
    db.session.commit()
    son = add_contact(elder.id, 1, channels="voice,sms", name="儿子")  # first in the chain, texted at his step
    add_contact(elder.id, 2, channels="voice,wechat", wechat_openid=FOLLOWER, name="女儿")
    niece = add_contact(elder.id, 3, channels="voice", name="外甥女")  # follows no official account
    add_contact(elder.id, 4, channels="voice", relation="staff", name="值班室")
    staff = StaffFactory(display_name="小李")
    db.session.commit()

    alert = help_alerts.raise_alert(resident_id=elder.id, source="device")
    if notice_first:  # the notice job ran before the first step (both are queued at the raise)
        assert help_notices.tell_family(alert_id=alert.id, event="raised") == 2
    assert escalation.advance(alert_id=alert.id, round=1, step=0)  # the son: a call and an SMS asking him to come
    if not notice_first:
        assert help_notices.tell_family(alert_id=alert.id, event="raised") == 2
    assert help_alerts.accept(alert_id=alert.id, via="console", staff_id=staff.id)
    assert help_notices.tell_family(alert_id=alert.id, event="accepted") == 2
    assert help_notices.tell_contacts_taken_now(alert_id=alert.id) == 1  # the son, reached by the chain

    texts = [(m["to"], m["body"]) for m in twilio_stub.sent_messages()]
    assert [body for to, body in texts if to == niece.phone] == [
        "【邻里】王阿姨发起了一键求助，我们正在依次电话联系紧急联系人。",
        "【邻里】王阿姨的求助已由街道工作人员小李接受，正在前往。"]
    to_son = [body for to, body in texts if to == son.phone]
    # The chain's request and its "taken": no family notice on top of them.
    assert to_son == [to_son[0], "【邻里】王阿姨的求助已由街道工作人员小李接受，无需再前往，谢谢。"]
    assert to_son[0].startswith("【邻里】紧急求助")
    kefu = [c["json"]["text"]["content"] for c in wechat_stub.calls_to("/cgi-bin/message/custom/send")]
    assert len(kefu) == 2  # the follower: WeChat only
