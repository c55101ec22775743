"""Linli's Flask application factory."""
from __future__ import annotations

from apiflask import APIFlask
from flask import request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.routing import IntegerConverter

from app.api.openapi import register_spec_processor
from app.core.config import Settings
from app.core.errors import ERROR_SCHEMA, register_errorhandlers
from app.core.extensions import csrf, db, limiter, login_manager, migrate
from app.core.json_body import init_json_body_guard
from app.core.redis_client import init_redis
from app.core.request_log import configure_logging, init_request_logging
from app.core.security_headers import init_security_headers


def create_app(config: Settings | dict | None = None) -> APIFlask:
    """Build the app; `config` is Settings, a dict of overrides, or None to read the environment."""
    settings = config if isinstance(config, Settings) else Settings.from_env(**(config or {}))
    configure_logging()

    # No Swagger UI in production: it loads unpinned scripts from a CDN, a page outside the console's CSP.
    app = APIFlask(__name__, title="Linli API", version="1.0", spec_path="/openapi.json",
                   docs_path=None if settings.is_production else "/docs")
    app.config.update(settings.flask_config())
    app.json.ensure_ascii = False  # Chinese stays readable in JSON answers
    app.url_map.converters["int"] = BoundedIntConverter
    app.config.update(
        HTTP_ERROR_SCHEMA=ERROR_SCHEMA,
        VALIDATION_ERROR_SCHEMA=ERROR_SCHEMA,
        VALIDATION_ERROR_STATUS_CODE=422,
        SPEC_FORMAT="json",
        INFO={"description": "Linli (邻里): community service backend of a street office."},
    )
    app.extensions["linli_settings"] = settings
    if settings.TRUSTED_PROXY_HOPS > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # remote_addr (the per-address limits) is then the address the outermost trusted proxy saw; the Host is
        # never taken from X-Forwarded-Host, and Twilio signatures are checked against PUBLIC_BASE_URL anyway.
        hops = settings.TRUSTED_PROXY_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_spec_processor(app)
    register_commands(app)
    init_request_logging(app)
    init_json_body_guard(app)  # after the request id is set: a refused body is logged with one
    init_security_headers(app)
    return app


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` only matches ids the database's integer columns can hold; larger ones are a 404."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def register_extensions(app: APIFlask) -> None:
    from app import models  # noqa: F401  (the schema must be known before Migrate inspects it)

    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True)
    init_redis(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    limiter.request_filter(_is_vendor_webhook)
    app.session_interface = CookieSessionOnlyWhenSent()


# Vendor webhooks come from a handful of WeChat and Twilio addresses: a per-address limit would throttle
# every resident at once. They are limited per sender instead (conversations._over_rate).
_VENDOR_WEBHOOKS = frozenset({"wechat", "sms", "voice", "aliyun"})


def _is_vendor_webhook() -> bool:
    return request.blueprint in _VENDOR_WEBHOOKS


class CookieSessionOnlyWhenSent(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without building its signer for requests that carry no cookie
    (every webhook and API call): a measurable share of the webhook's CPU (issue 3)."""

    def open_session(self, app, request):
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def register_blueprints(app: APIFlask) -> None:
    from app.api.booking import bp as booking_bp
    from app.api.devices import bp as devices_bp
    from app.api.health import bp as health_bp
    from app.api.internal import bp as internal_bp
    from app.api.v1 import bp as mobile_bp
    from app.channels.aliyun import bp as aliyun_bp
    from app.channels.sms import bp as sms_bp
    from app.channels.voice import bp as voice_bp
    from app.channels.wechat import bp as wechat_bp
    from app.console import bp as console_bp

    # Webhooks and token-authenticated APIs carry no browser session, so no CSRF token either;
    # the console's forms keep CSRF protection.
    for blueprint in (health_bp, internal_bp, booking_bp, devices_bp, mobile_bp, wechat_bp, sms_bp, voice_bp,
                      aliyun_bp):
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    # apiflask documents APIBlueprints only; the console's HTML pages say so explicitly.
    console_bp.enable_openapi = False
    app.register_blueprint(console_bp)


def register_commands(app: APIFlask) -> None:
    from app.cli import register

    register(app)


def _migrations_dir() -> str:
    import os

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
