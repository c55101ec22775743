"""The outbound transports of this app (WeChat, Twilio and Aliyun SMS/voice, the bot), built once from configuration.

With no credentials configured each is the recording implementation, so a laptop without accounts
keeps every message in the outbox and the recordings instead of failing.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.core.config import setting
from app.core.redis_client import get_redis


@dataclass
class Transports:
    wechat: object  # integrations.wechat.WeChatSender
    twilio: object  # integrations.twilio SmsSender + VoiceCaller
    bot: object  # integrations.rasa.BotClient
    aliyun: object = None  # integrations.aliyun AliyunTelephony (or its recording twin): calls and SMS in mainland China


def _build() -> Transports:
    from integrations.rasa import RasaRestClient
    from integrations.twilio import build_twilio_transport
    from integrations.wechat import build_wechat_sender

    cfg = current_app.config
    return Transports(
        wechat=build_wechat_sender(app_id=cfg["WECHAT_APP_ID"], secret=cfg["WECHAT_SECRET"],
                                   api_base=cfg["WECHAT_API_BASE"], redis=get_redis()),
        twilio=build_twilio_transport(account_sid=cfg["TWILIO_ACCOUNT_SID"], auth_token=cfg["TWILIO_AUTH_TOKEN"],
                                      from_number=cfg["TWILIO_FROM"], api_base=cfg["TWILIO_API_BASE"]),
        bot=RasaRestClient(cfg["RASA_URL"]),
        aliyun=_build_aliyun(cfg),
    )


def _build_aliyun(cfg):
    from integrations.aliyun import AliyunAccount, build_aliyun_telephony, parse_templates

    return build_aliyun_telephony(AliyunAccount(
        access_key_id=cfg["ALIYUN_ACCESS_KEY_ID"], access_key_secret=cfg["ALIYUN_ACCESS_KEY_SECRET"],
        show_number=cfg["ALIYUN_VMS_SHOW_NUMBER"],
        voice_templates=parse_templates(cfg["ALIYUN_VMS_TEMPLATES"], "ALIYUN_VMS_TEMPLATES"),
        sms_sign_name=cfg["ALIYUN_SMS_SIGN_NAME"],
        sms_templates=parse_templates(cfg["ALIYUN_SMS_TEMPLATES"], "ALIYUN_SMS_TEMPLATES"),
        vms_endpoint=cfg["ALIYUN_VMS_ENDPOINT"], sms_endpoint=cfg["ALIYUN_SMS_ENDPOINT"],
        protocol=cfg["ALIYUN_PROTOCOL"]))


def telephony_for(number: str):
    """The provider (integrations.telephony.Telephony) that reaches this number, by TELEPHONY_PROVIDER."""
    from integrations.telephony import TwilioTelephony, choose_provider, parse_prefixes

    out = get()
    name = choose_provider(number, mode=setting("TELEPHONY_PROVIDER"),
                           aliyun_prefixes=parse_prefixes(setting("TELEPHONY_ALIYUN_PREFIXES")))
    return out.aliyun if name == "aliyun" else TwilioTelephony(out.twilio)


def get() -> Transports:
    """This app's transports (built on first use, then shared by its requests and jobs)."""
    transports = current_app.extensions.get("linli_transports")
    if transports is None:
        transports = current_app.extensions["linli_transports"] = _build()
    return transports


def use(app, **parts) -> Transports:
    """Replace parts for an app (tests hand in recording transports or clients aimed at stub servers)."""
    with app.app_context():
        transports = get()
    for name, value in parts.items():
        setattr(transports, name, value)
    return transports
