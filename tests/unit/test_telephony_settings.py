"""Telephony settings fail fast: an unknown provider, template codes that are not JSON, an Aliyun push unguarded."""
from __future__ import annotations

import pytest

from app.core.config import ConfigError, Settings
from integrations.aliyun import aliyun_number
from integrations.telephony import parse_prefixes


def test_an_unknown_provider_is_refused():
    with pytest.raises(ConfigError, match="TELEPHONY_PROVIDER"):
        Settings(TELEPHONY_PROVIDER="aliyn").validate()


def test_template_codes_must_be_a_json_object():
    with pytest.raises(ConfigError, match="ALIYUN_SMS_TEMPLATES"):
        Settings(ALIYUN_SMS_TEMPLATES="help_request=SMS_1").validate()
    with pytest.raises(ConfigError, match="ALIYUN_VMS_TEMPLATES"):
        Settings(ALIYUN_VMS_TEMPLATES='["TTS_1"]').validate()


def test_aliyun_with_an_account_needs_a_push_token_a_number_and_its_voice_templates():
    voice = '{"intro": "TTS_1", "key1": "TTS_2", "key2": "TTS_3", "no_key": "TTS_4"}'
    sms = '{"message": "SMS_1", "verify_code": "SMS_2"}'
    account = {"TELEPHONY_PROVIDER": "by_number", "ALIYUN_ACCESS_KEY_ID": "LTAI5t000",
               "ALIYUN_VMS_SHOW_NUMBER": "057112345678", "ALIYUN_VMS_TEMPLATES": voice,
               "ALIYUN_SMS_SIGN_NAME": "邻里", "ALIYUN_SMS_TEMPLATES": sms}
    with pytest.raises(ConfigError, match="ALIYUN_CALLBACK_TOKEN"):
        Settings(**account, ALIYUN_CALLBACK_TOKEN="short").validate()
    with pytest.raises(ConfigError, match="no_key"):
        Settings(**{**account, "ALIYUN_VMS_TEMPLATES": '{"intro": "TTS_1"}'}, ALIYUN_CALLBACK_TOKEN="t" * 16).validate()
    Settings(**account, ALIYUN_CALLBACK_TOKEN="t" * 16).validate()
    Settings(ALIYUN_ACCESS_KEY_ID="LTAI5t000").validate()  # Twilio carries everything: the push is never used


def test_aliyun_sms_needs_a_signature_and_the_generic_and_verification_code_templates():
    # Without them a mainland resident would get no outbox SMS and no sign-in code.
    voice = '{"intro": "TTS_1", "key1": "TTS_2", "key2": "TTS_3", "no_key": "TTS_4"}'
    account = {"TELEPHONY_PROVIDER": "aliyun", "ALIYUN_ACCESS_KEY_ID": "LTAI5t000", "ALIYUN_CALLBACK_TOKEN": "t" * 16,
               "ALIYUN_VMS_SHOW_NUMBER": "057112345678", "ALIYUN_VMS_TEMPLATES": voice, "ALIYUN_SMS_SIGN_NAME": "邻里"}
    with pytest.raises(ConfigError, match="verify_code"):
        Settings(**account, ALIYUN_SMS_TEMPLATES='{"message": "SMS_1"}').validate()
    with pytest.raises(ConfigError, match="ALIYUN_SMS_SIGN_NAME"):
        Settings(**{**account, "ALIYUN_SMS_SIGN_NAME": ""},
                 ALIYUN_SMS_TEMPLATES='{"message": "SMS_1", "verify_code": "SMS_2"}').validate()
    Settings(**account, ALIYUN_SMS_TEMPLATES='{"message": "SMS_1", "verify_code": "SMS_2"}').validate()


def test_numbers_take_aliyuns_format_and_prefixes_their_plus():
    assert aliyun_number("+8613700001111") == "13700001111"
    assert aliyun_number("+85291234567") == "85291234567"
    assert parse_prefixes("86, +852,") == ("+86", "+852")
