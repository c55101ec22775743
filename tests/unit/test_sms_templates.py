"""Which approved Aliyun template an outbox row goes as, and how our own words fit Aliyun's variables."""
from __future__ import annotations

import json

import pytest

from app.models import OutboundMessage
from app.services.delivery.sms_templates import text_message
from integrations.aliyun import VARIABLE_MAX_CHARS, content_parts, template_params
from tests.conftest import make_test_app

OFFER_FIELDS = {"patient": "李阿姨", "time": "2031年03月12日 09:00", "place": "社区医院内科", "until": "2031年03月10日 12:00"}


@pytest.fixture
def configured():
    def build(*keys: str):
        app = make_test_app(ALIYUN_SMS_TEMPLATES=json.dumps({k: f"SMS_{i}" for i, k in enumerate(keys)}))
        return app.app_context()
    return build


def row(kind: str, body: str = "【邻里】候补到号：李阿姨……", fields: dict | None = None) -> OutboundMessage:
    return OutboundMessage(id=7, kind=kind, body=body, to_address="+8613800001111", template_fields=fields)


def test_a_waitlist_offer_fills_its_own_template_with_the_rows_fields(configured):
    with configured("message", "waitlist_offer"):
        message = text_message(row("waitlist_offer", fields=OFFER_FIELDS), status_callback="http://x/sms/status")
    assert (message.template, message.params, message.ref) == ("waitlist_offer", OFFER_FIELDS, "outbox-7")
    assert message.body.startswith("【邻里】") and message.status_callback == "http://x/sms/status"  # Twilio's


def test_without_its_own_template_or_with_a_field_too_long_a_row_goes_as_the_generic_words(configured):
    with configured("message"):
        assert text_message(row("waitlist_offer", fields=OFFER_FIELDS)).template == "message"
        assert text_message(row("staff_reply", body="好的")).params == {"content": "好的"}
    with configured("message", "waitlist_offer"):
        long_place = {**OFFER_FIELDS, "place": "某" * (VARIABLE_MAX_CHARS + 1)}
        assert text_message(row("waitlist_offer", fields=long_place)).template == "message"


def test_a_staff_reply_has_its_own_template_and_a_bot_reply_the_generic_one(configured):
    with configured("message", "staff_reply"):
        assert text_message(row("staff_reply", body="好的")).template == "staff_reply"
        assert text_message(row("reply", body="您好")).template == "message"


def test_long_words_are_cut_at_sentence_ends_without_the_signature_and_at_most_five_parts():
    parts = content_parts("【邻里】手机号+86138****1234的账户已与一个微信账号合并。如非本人操作，请立即联系社区工作人员。")
    assert parts == ["手机号+86138****1234的账户已与一个微信账号合并。", "如非本人操作，请立即联系社区工作人员。"]
    many = content_parts("很长的一句话没有标点" * 30)
    assert len(many) == 5 and all(len(p) <= VARIABLE_MAX_CHARS for p in many) and many[-1].endswith("…")
    assert content_parts("【邻里】") == ["-"]  # Aliyun refuses an empty variable


def test_only_the_content_variable_is_cut_the_others_repeat_in_each_part():
    from integrations.telephony import TextMessage

    message = TextMessage(to="+8613800001111", body="", template="t", params={"name": "王", "content": "一。" * 30})
    params = template_params(message)
    assert len(params) == 2 and all(p["name"] == "王" for p in params)
    assert template_params(TextMessage(to="x", body="", template="t", params={"code": "123456"})) == [{"code": "123456"}]
