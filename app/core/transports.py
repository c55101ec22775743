"""The outbound transports of this app (WeChat, Twilio SMS/voice, the bot), built once from configuration.

With no credentials configured each is the recording implementation, so a laptop without accounts
keeps every message in the outbox and the recordings instead of failing.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.core.redis_client import get_redis


@dataclass
class Transports:
    wechat: object  # integrations.wechat.WeChatSender
    twilio: object  # integrations.twilio SmsSender + VoiceCaller
    bot: object  # integrations.rasa.BotClient


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
    )


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
