"""Configuration read from environment variables, with safe defaults for a laptop."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

from flask import current_app


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


# Secrets that a production deployment must set explicitly; a default would be a hole.
PRODUCTION_SECRETS = ("SECRET_KEY", "BOT_SERVICE_TOKEN", "WECHAT_TOKEN", "TWILIO_AUTH_TOKEN")
# The only ENV values that are not production (case and surrounding spaces ignored). Any other value, a misspelling
# ("prod", "Production") or a name of its own ("staging"), runs as production: a mistake makes the app stricter.
NON_PRODUCTION_ENVS = frozenset({"development", "test", "bench"})
MIN_SECRET_KEY_LENGTH = 32  # it signs sessions and keys the encryption at rest of ID numbers and device secrets
# Placeholders from examples, refused in production like the declared defaults.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "change_me", "secret", "password", "test", "dev"})


def _weak_secret(value: str, default: str) -> bool:
    value = (value or "").strip()
    return not value or value == default or value.lower() in PLACEHOLDER_SECRETS


def _mangled_secret(value: str) -> bool:
    """A value no generated secret has: a comment or white space inside. systemd's EnvironmentFile= (and Docker's
    --env-file) read a `#` as a comment only at the start of a line, so `SECRET_KEY=   # python -c ...` left
    "blank" sets the comment itself, 61 characters that would pass the length check."""
    value = (value or "").strip()
    return value.startswith("#") or any(ch.isspace() for ch in value)


@dataclass
class Settings:
    """Every setting of the app; names match the environment variables (a deployment contract)."""

    ENV: str = "development"
    DATABASE_URL: str = "sqlite:///instance/linli.db"
    REPORTS_DATABASE_URL: str = ""  # a streaming replica the reports read (docs/deploy.md); empty: DATABASE_URL
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    RASA_URL: str = "http://127.0.0.1:5005"
    PUBLIC_BASE_URL: str = "http://127.0.0.1:5000"
    # Proxies in front whose X-Forwarded-For/-Proto are believed (deploy/gunicorn.conf.py: 1, nginx). 0: none, so a
    # client cannot pick its own address; too few behind a proxy makes every per-address limit one shared budget.
    TRUSTED_PROXY_HOPS: int = 0
    SECRET_KEY: str = "dev-secret-change-me"
    BOT_SERVICE_TOKEN: str = "dev-bot-token"
    WECHAT_TOKEN: str = "linli-dev-token"
    WECHAT_APP_ID: str = ""
    WECHAT_SECRET: str = ""
    WECHAT_AES_KEY: str = ""
    WECHAT_API_BASE: str = "https://api.weixin.qq.com/cgi-bin/"
    # Subscribe-message (订阅通知) templates as JSON: logical key -> template id, or -> {"id": ..., "fields":
    # {WeChat keyword: our field}} (docs/channels.md). A key not listed is never sent as a subscribe message.
    WECHAT_SUBSCRIBE_TEMPLATES: str = ""
    TWILIO_ACCOUNT_SID: str = ""
    TWILIO_AUTH_TOKEN: str = ""
    TWILIO_FROM: str = ""
    TWILIO_API_BASE: str = "https://api.twilio.com"
    # Who carries help calls and SMS (docs/help.md, "Providers"): "twilio", "aliyun", or "by_number" (numbers with
    # a prefix in TELEPHONY_ALIYUN_PREFIXES go by Aliyun: Twilio places no calls to mainland China numbers).
    TELEPHONY_PROVIDER: str = "twilio"
    TELEPHONY_ALIYUN_PREFIXES: str = "+86"
    ALIYUN_ACCESS_KEY_ID: str = ""
    ALIYUN_ACCESS_KEY_SECRET: str = ""
    ALIYUN_VMS_SHOW_NUMBER: str = ""  # the real number (真实号) help calls show
    ALIYUN_VMS_TEMPLATES: str = ""  # JSON: intro, key1, key2, no_key (+ check-in ones, docs/help.md) -> TTS_ codes
    ALIYUN_SMS_SIGN_NAME: str = ""
    # JSON: our template key -> approved SMS_ template code. Help: help_request, help_taken, help_confirm, help_closed;
    # the outbox and codes (docs/channels.md): message (generic, one ${content}), staff_reply, booking_reminder,
    # waitlist_offer, verify_code.
    ALIYUN_SMS_TEMPLATES: str = ""
    ALIYUN_VMS_ENDPOINT: str = "dyvmsapi.aliyuncs.com"
    ALIYUN_SMS_ENDPOINT: str = "dysmsapi.aliyuncs.com"
    ALIYUN_PROTOCOL: str = "https"
    # Aliyun signs no receipt push: the secret path segment of the push URLs, where they may come from (CIDRs,
    # empty: anywhere) and how old a report may be (Aliyun retries a failed push for about 16 minutes).
    ALIYUN_CALLBACK_TOKEN: str = ""
    ALIYUN_CALLBACK_SOURCES: str = ""
    ALIYUN_CALLBACK_MAX_AGE: int = 1800
    # Seconds the WeChat webhook waits for the bot before answering "success" (WeChat gives up at 5).
    WECHAT_REPLY_BUDGET: float = 4.0
    # Seconds the SMS webhook waits for the bot (its replies go by the outbox); a later answer is sent when it comes.
    SMS_BOT_WAIT: float = 4.0
    # After an answer misses its wait, webhooks of that process stop waiting for the bot for this long (bot_wait.py).
    BOT_BEHIND_SECONDS: float = 30.0
    BOT_TIMEOUT: float = 10.0
    SIMULATOR_ENABLED: bool = False
    BOOKING_RELEASE_DAYS: int = 7
    BOOKING_RELEASE_TIME: str = "08:00"  # Asia/Shanghai
    BOOKING_CANCEL_DEADLINE: str = "15:00"  # the day before the visit
    BOOKING_REMINDER_EVENING: str = "18:00"
    BOOKING_MAX_ACTIVE: int = 3
    # Per resident, so registering family members cannot multiply the per-patient limits (docs/booking.md).
    BOOKING_MAX_FAMILY_MEMBERS: int = 5
    BOOKING_MAX_ACTIVE_PER_RESIDENT: int = 6
    BOOKING_MAX_PER_RESIDENT_DEPARTMENT_DAY: int = 2
    # A chosen slot's seat is held this long while the resident confirms; a waitlist offer this long (docs/booking.md).
    BOOKING_HOLD_SECONDS: int = 300
    BOOKING_OFFER_SECONDS: int = 1800
    SENDER_RATE_LIMIT: str = "20/minute"  # per resident address; the first message always gets through
    BOT_THREADS: int = 32  # bot turns running at once per web process
    OUTBOX_RETRY_BASE_SECONDS: float = 5.0  # exponential backoff base, at most 6 attempts
    OUTBOX_SEND_LEASE_SECONDS: float = 60.0  # a row "sending" longer than this is taken back by the sweeper
    OUTBOX_SWEEP_GRACE_SECONDS: float = 30.0
    TIMEZONE: str = "Asia/Shanghai"
    # Elder care (docs/help.md): a help button's heartbeat period unless it reports its own, the battery percentage
    # below which it needs a visit, and how long an accepted alert may stay open before it rings again.
    DEVICE_HEARTBEAT_SECONDS: int = 3600
    DEVICE_LOW_BATTERY_PERCENT: int = 20
    HELP_REALERT_MINUTES: int = 30
    HELP_CALL_THREADS: int = 8  # calls and SMS of a wave (escalation.place_many) handed to the provider at once, per job
    # Work orders (docs/workorders.md): limits when work_order_time_limits has no row for a category, the warning
    # before a limit (超期预警), how long a follow-up (回访) waits for its answer, the duplicate-report window.
    WORKORDER_RESPONSE_MINUTES: int = 240
    WORKORDER_HANDLING_MINUTES: int = 3 * 24 * 60
    WORKORDER_WARN_BEFORE_MINUTES: int = 60
    WORKORDER_FOLLOWUP_HOURS: int = 72
    WORKORDER_DUPLICATE_HOURS: int = 72
    # The resident mobile API (/api/v1, docs/mobile-api.md).
    MOBILE_ACCESS_TOKEN_SECONDS: int = 900
    MOBILE_REFRESH_TOKEN_DAYS: int = 30
    MOBILE_CODE_RESEND_SECONDS: int = 60
    MOBILE_CODES_PER_PHONE_HOUR: int = 5
    MOBILE_CODES_PER_PHONE_DAY: int = 10  # as SMS providers' usual flow control for verification codes
    # Country calling codes whose mobiles get SMS codes: codes abroad cost money and feed SMS pumping fraud.
    SMS_CODE_COUNTRY_CODES: str = "86"
    MOBILE_CODES_PER_IP_HOUR: int = 20
    MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR: int = 10
    MOBILE_SIGN_IN_TRIES_PER_IP_HOUR: int = 50
    MOBILE_PHOTO_MAX_BYTES: int = 5 * 1024 * 1024
    # Per resident: uploads an hour, photos waiting for a request, photos stored; unattached ones are swept after.
    MOBILE_PHOTOS_PER_HOUR: int = 20
    MOBILE_PHOTOS_UNATTACHED_MAX: int = 10
    MOBILE_PHOTOS_PER_RESIDENT_MAX: int = 300
    MOBILE_PHOTO_UNATTACHED_HOURS: int = 24
    MOBILE_PHOTO_STORAGE: str = "local"  # "local" (MOBILE_UPLOAD_DIR) or "s3" (MOBILE_S3_BUCKET, MOBILE_S3_ENDPOINT)
    MOBILE_UPLOAD_DIR: str = ""  # empty: <instance folder>/uploads
    MOBILE_S3_BUCKET: str = ""
    MOBILE_S3_ENDPOINT: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        values = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = os.environ.get(f.name)
            if raw is None:
                continue
            if f.type in ("float", float):
                values[f.name] = _env_float(f.name, f.default)
            elif f.type in ("int", int):
                values[f.name] = int(_env_float(f.name, f.default))
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw.strip()
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def is_production(self) -> bool:
        return (self.ENV or "").strip().lower() not in NON_PRODUCTION_ENVS

    def validate(self) -> None:
        if self.is_production:
            self._validate_production()
        if self.WECHAT_AES_KEY and len(self.WECHAT_AES_KEY) != 43:
            raise ConfigError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if self.WECHAT_SUBSCRIBE_TEMPLATES:
            try:
                templates = json.loads(self.WECHAT_SUBSCRIBE_TEMPLATES)
            except ValueError as exc:
                raise ConfigError(f"WECHAT_SUBSCRIBE_TEMPLATES is not JSON: {exc}") from exc
            if not isinstance(templates, dict):
                raise ConfigError("WECHAT_SUBSCRIBE_TEMPLATES must be a JSON object of template keys")
        self._validate_telephony()

    def _validate_telephony(self) -> None:
        if self.TELEPHONY_PROVIDER not in ("twilio", "aliyun", "by_number"):
            raise ConfigError("TELEPHONY_PROVIDER must be twilio, aliyun or by_number")
        for name in ("ALIYUN_VMS_TEMPLATES", "ALIYUN_SMS_TEMPLATES"):
            raw = getattr(self, name)
            try:
                if raw and not isinstance(json.loads(raw), dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                raise ConfigError(f"{name} must be a JSON object of template codes: {exc}") from exc
        if self.TELEPHONY_PROVIDER == "twilio" or not self.ALIYUN_ACCESS_KEY_ID:
            return
        if len(self.ALIYUN_CALLBACK_TOKEN) < 16:
            # The push is unsigned: the token is its first guard (docs/help.md, "Aliyun's receipts").
            raise ConfigError("Aliyun telephony needs ALIYUN_CALLBACK_TOKEN of at least 16 random characters")
        voice = json.loads(self.ALIYUN_VMS_TEMPLATES or "{}")
        missing = [k for k in ("intro", "key1", "key2", "no_key") if not voice.get(k)]
        if missing or not self.ALIYUN_VMS_SHOW_NUMBER:
            raise ConfigError("Aliyun telephony needs ALIYUN_VMS_SHOW_NUMBER and ALIYUN_VMS_TEMPLATES with "
                              "intro, key1, key2 and no_key (approved TTS template codes)")
        # The outbox's fallback for any words (staff replies, notices) and the sign-in code: without them a mainland
        # resident would get nothing by SMS and could not sign in (docs/channels.md, "SMS through Aliyun").
        sms = json.loads(self.ALIYUN_SMS_TEMPLATES or "{}")
        missing = [k for k in ("message", "verify_code") if not sms.get(k)]
        if missing or not self.ALIYUN_SMS_SIGN_NAME:
            raise ConfigError("Aliyun telephony needs ALIYUN_SMS_SIGN_NAME and ALIYUN_SMS_TEMPLATES with message "
                              "and verify_code (approved SMS template codes)")

    def _validate_production(self) -> None:
        mode = f"production mode (ENV={self.ENV!r}; only {', '.join(sorted(NON_PRODUCTION_ENVS))} are not production)"
        defaults = {f.name: f.default for f in fields(self) if f.name != "extra"}
        weak = [name for name in PRODUCTION_SECRETS if _weak_secret(getattr(self, name), defaults[name])]
        if weak:
            raise ConfigError(f"{mode} needs these secrets set, not empty nor a published default: " + ", ".join(weak))
        mangled = [name for name in PRODUCTION_SECRETS if _mangled_secret(getattr(self, name))]
        if mangled:
            raise ConfigError(f"{mode} refuses secrets that start with '#' or hold white space (an inline comment in "
                              "the environment file? systemd reads '#' as a comment only at a line's start): "
                              + ", ".join(mangled))
        if len(self.SECRET_KEY.strip()) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(f"{mode} needs a SECRET_KEY of at least {MIN_SECRET_KEY_LENGTH} characters, e.g. "
                              "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if self.SIMULATOR_ENABLED:
            raise ConfigError(f"{mode} refuses SIMULATOR_ENABLED: the simulator lets staff post as any resident")
        if not self.WECHAT_AES_KEY:
            # Plain mode signs no body: a captured signature could carry any message (the envelope's replay memory
            # narrows that, but only safe mode's signature covers what was sent).
            raise ConfigError(f"{mode} needs WECHAT_AES_KEY: the official account must use safe mode (安全模式)")

    def flask_config(self) -> dict:
        """The mapping handed to Flask's app.config."""
        cfg = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        cfg.update(self.extra)
        cfg.update(
            SQLALCHEMY_DATABASE_URI=_normalise_db_url(self.DATABASE_URL),
            SQLALCHEMY_ENGINE_OPTIONS=_engine_options(self.DATABASE_URL),
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=self.is_production,
            REMEMBER_COOKIE_SECURE=self.is_production,
            MAX_CONTENT_LENGTH=1024 * 1024,
            RATELIMIT_STORAGE_URI=self.REDIS_URL,
            RATELIMIT_HEADERS_ENABLED=True,
        )
        return cfg


_CASTS = {"int": int, "float": float, "bool": bool, "str": str}


def setting(name: str):
    """A setting of the running app, typed as Settings declares it.

    Read from the app's config (where a test or an operator may have changed it since start), with Settings'
    default when unset; an unknown name is a KeyError, so a typo fails loudly instead of taking a default.
    """
    declared = _DECLARED[name]
    value = current_app.config.get(name, declared.default)
    kind = declared.type if isinstance(declared.type, str) else declared.type.__name__
    return _CASTS[kind](value) if kind in _CASTS else value


def _normalise_db_url(url: str) -> str:
    # psycopg 3 is the installed driver; plain postgres URLs would ask SQLAlchemy for psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    # pre_ping turns a dropped PostgreSQL connection into a fresh one instead of a failed request.
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


_DECLARED = {f.name: f for f in fields(Settings) if f.name != "extra"}
