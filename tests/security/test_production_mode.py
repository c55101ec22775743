"""Production is the default, not a spelling: any ENV but the development names starts as production, which refuses
weak or default secrets and the resident simulator, serves no Swagger UI and documents no internal API (issue 26)."""
from __future__ import annotations

import pytest

from app import create_app
from app.core.config import ConfigError, Settings
from tests.conftest import TEST_SETTINGS

STRONG = {"SECRET_KEY": "q7RZk2m9Vx4pL8sT1wY6nB3cF5hJ0dGa-prod", "BOT_SERVICE_TOKEN": "bot-token-of-production-26",
          "WECHAT_TOKEN": "wxProdToken26", "TWILIO_AUTH_TOKEN": "twilio-production-auth-token-26",
          "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}
SECRETS = ("SECRET_KEY", "BOT_SERVICE_TOKEN", "WECHAT_TOKEN", "TWILIO_AUTH_TOKEN")
PRODUCTION_SPELLINGS = ["production", "prod", "Production", " production", "PRODUCTION", "staging", "live", ""]
INTERNAL_PREFIXES = ("/api/internal", "/api/booking")


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*SECRETS, "ENV", "SIMULATOR_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- what counts as production -------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", PRODUCTION_SPELLINGS)
def test_any_env_but_the_development_names_refuses_to_start_with_default_secrets(clean_env, spelling):
    clean_env.setenv("ENV", spelling)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env()


@pytest.mark.parametrize("spelling", PRODUCTION_SPELLINGS)
def test_create_app_with_any_production_spelling_refuses_default_secrets(spelling):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({**TEST_SETTINGS, "ENV": spelling, "SECRET_KEY": "dev-secret-change-me"})


@pytest.mark.parametrize("spelling", PRODUCTION_SPELLINGS)
def test_any_production_spelling_with_strong_secrets_starts_as_production(spelling):
    settings = Settings(ENV=spelling, **STRONG)
    settings.validate()
    assert settings.is_production
    assert settings.flask_config()["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("name", ["development", "test", "bench", "Development", " TEST "])
def test_the_development_names_start_with_the_defaults(name):
    settings = Settings(ENV=name)
    settings.validate()
    assert not settings.is_production


# --- secrets strong enough for production --------------------------------------------------------------------------

@pytest.mark.parametrize("name,value", [
    ("SECRET_KEY", "x" * 31),  # shorter than 32 characters
    ("SECRET_KEY", "dev-secret-change-me"),  # the public default
    ("SECRET_KEY", " " * 40),
    ("BOT_SERVICE_TOKEN", ""),
    ("BOT_SERVICE_TOKEN", "dev-bot-token"),
    ("BOT_SERVICE_TOKEN", "   "),
    ("WECHAT_TOKEN", "linli-dev-token"),
    ("TWILIO_AUTH_TOKEN", ""),
])
def test_production_refuses_a_weak_or_default_secret(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings(ENV="production", **{**STRONG, name: value}).validate()


# systemd's EnvironmentFile= reads '#' as a comment only at a line's start: `SECRET_KEY=   # python -c '...'` left
# "blank" sets the comment itself (61 characters, long enough for the length check). deploy/systemd/linli.env.example
# keeps its comments on lines of their own (tests/architecture/test_deploy_env.py); these refuse the mistake anyway.
COMMENT_AS_VALUE = "# python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize("value", [COMMENT_AS_VALUE, "#" + "x" * 40, "q7RZk2m9Vx4pL8sT1wY6 nB3cF5hJ0dGa-prod",
                                   "q7RZk2m9Vx4pL8sT1wY6\tnB3cF5hJ0dGa-prod"])
def test_production_refuses_a_secret_that_is_a_comment_or_holds_white_space(name, value):
    assert len(value) >= 32
    with pytest.raises(ConfigError, match=f"start with '#' or hold white space.*{name}"):
        Settings(ENV="production", **{**STRONG, name: value}).validate()


def test_production_refuses_an_inline_comment_read_from_the_environment(clean_env):
    for name, value in {**STRONG, "ENV": "production", "SECRET_KEY": COMMENT_AS_VALUE}.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env()


def test_production_refuses_a_weak_secret_read_from_the_environment(clean_env):
    for name, value in {**STRONG, "ENV": "production", "SECRET_KEY": "short-but-not-default"}.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match="SECRET_KEY.*32"):
        Settings.from_env()


def test_production_starts_with_strong_secrets(clean_env):
    for name, value in {**STRONG, "ENV": "production"}.items():
        clean_env.setenv(name, value)
    assert Settings.from_env().is_production


# --- the resident simulator -----------------------------------------------------------------------------------------

def test_production_refuses_the_simulator(clean_env):
    for name, value in {**STRONG, "ENV": "prod", "SIMULATOR_ENABLED": "true"}.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match="SIMULATOR_ENABLED"):
        Settings.from_env()
    with pytest.raises(ConfigError, match="SIMULATOR_ENABLED"):
        create_app({**TEST_SETTINGS, **STRONG, "ENV": "production", "SIMULATOR_ENABLED": True})


def test_development_keeps_the_simulator():
    Settings(ENV="development", SIMULATOR_ENABLED=True).validate()


# --- /docs and /openapi.json -----------------------------------------------------------------------------------------

@pytest.fixture
def production_app():
    return create_app({**TEST_SETTINGS, **STRONG, "ENV": "production"})


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_production_serves_no_swagger_ui(production_app):
    client = production_app.test_client()
    for path in ("/docs", "/docs/oauth2-redirect"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "swagger" not in response.get_data(as_text=True).lower()


def test_production_documents_the_public_api_only(production_app):
    spec = production_app.test_client().get("/openapi.json").get_json()
    paths = set(spec["paths"])
    assert not [p for p in paths if p.startswith(INTERNAL_PREFIXES)]
    assert any(p.startswith("/api/v1/") for p in paths) and "/healthz" in paths
    # Nothing of the hidden routes is left behind: no schema, tag or security scheme only they used.
    schemas = spec.get("components", {}).get("schemas", {})
    used, frontier = set(), _refs(spec["paths"])
    while frontier:
        used |= frontier
        frontier = _refs([schemas[name] for name in frontier if name in schemas]) - used
    assert set(schemas) <= used, set(schemas) - used
    assert not {"Internal (bot)", "Booking"} & {tag["name"] for tag in spec.get("tags", [])}
    schemes = {name for operations in spec["paths"].values() for op in operations.values() if isinstance(op, dict)
               for requirement in op.get("security", []) for name in requirement}
    assert set(spec.get("components", {}).get("securitySchemes", {})) <= schemes


def test_development_keeps_the_docs_and_the_whole_api(client):
    assert client.get("/docs").status_code == 200
    paths = set(client.get("/openapi.json").get_json()["paths"])
    assert any(p.startswith("/api/internal/") for p in paths) and any(p.startswith("/api/booking/") for p in paths)


def test_production_requires_wechat_safe_mode():
    """Plain mode signs no body (tests/security/test_wechat_replay.py): production runs the account in safe mode."""
    without = {k: v for k, v in STRONG.items() if k != "WECHAT_AES_KEY"}
    with pytest.raises(ConfigError, match="WECHAT_AES_KEY"):
        Settings(ENV="production", **without).validate()
    Settings(ENV="production", **STRONG).validate()
