"""Configuration comes from the environment and fails fast where a default would be a hole."""
from __future__ import annotations

import pytest

from app.core.config import ConfigError, Settings


def test_production_refuses_to_start_with_default_secrets(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env()
    assert "SECRET_KEY" in str(excinfo.value)


def test_production_starts_when_every_secret_is_set(monkeypatch):
    for name, value in {"ENV": "production", "SECRET_KEY": "s" * 32, "BOT_SERVICE_TOKEN": "b" * 32,
                        "WECHAT_TOKEN": "w" * 16, "TWILIO_AUTH_TOKEN": "t" * 32,
                        "WECHAT_AES_KEY": "k" * 43}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.is_production
    assert settings.flask_config()["SESSION_COOKIE_SECURE"] is True


def test_contract_variable_names_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WECHAT_API_BASE", "http://127.0.0.1:9999/cgi-bin/")
    monkeypatch.setenv("TWILIO_API_BASE", "http://127.0.0.1:9998")
    monkeypatch.setenv("WECHAT_REPLY_BUDGET", "2.5")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    settings = Settings.from_env()
    assert settings.WECHAT_API_BASE == "http://127.0.0.1:9999/cgi-bin/"
    assert settings.TWILIO_API_BASE == "http://127.0.0.1:9998"
    assert settings.WECHAT_REPLY_BUDGET == 2.5
    assert settings.flask_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_a_malformed_number_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("BOT_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="BOT_TIMEOUT"):
        Settings.from_env()


def test_an_aes_key_of_the_wrong_length_is_refused(monkeypatch):
    monkeypatch.setenv("WECHAT_AES_KEY", "short")
    with pytest.raises(ConfigError, match="WECHAT_AES_KEY"):
        Settings.from_env()
