from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import (
    CleverApiVersion,
    Settings,
    SettingsError,
    load_settings,
    parse_cron,
    to_asyncpg_url,
    to_sqlalchemy_url,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.clever_api_base_url == "https://api.clever.com"
    assert settings.clever_api_version is CleverApiVersion.V3_0
    assert settings.clever_oauth_base_url == "https://clever.com"
    assert settings.clever_district_tokens == []
    assert settings.database_url is None


def test_tokens_are_comma_separated_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEVER_DISTRICT_TOKENS", " tok-a ,tok-b,, ")
    settings = load_settings()
    assert [t.get_secret_value() for t in settings.clever_district_tokens] == ["tok-a", "tok-b"]
    assert "tok-a" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db", "postgres://u@h/db"],
)
def test_database_url_forms(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    settings = load_settings()
    assert settings.sqlalchemy_database_url.startswith("postgresql+asyncpg://")
    assert settings.asyncpg_database_url.startswith("postgresql://")
    assert to_asyncpg_url(to_sqlalchemy_url(url)) == settings.asyncpg_database_url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLEVER_API_VERSION", "v4"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("REDIS_URL", "http://localhost"),
        ("CLEVER_PAGE_SIZE", "20000"),
        ("CLEVER_API_BASE_URL", "api.clever.com"),
        ("SYNC_FULL_CRON", "61 * * * *"),
        ("SYNC_EVENTS_INTERVAL_SECONDS", "often"),
        ("LOG_LEVEL", "LOUD"),
        ("SENSITIVE_FIELDS_ENABLED", "maybe"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"invalid setting {variable}:"):
        load_settings()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLEVER_API_VERSION=v3.1\n")
    assert load_settings().clever_api_version is CleverApiVersion.V3_1


def test_parse_cron() -> None:
    minute, hour, day, month, weekday = parse_cron("*/15 3,4 1-3 * 1-5/2")
    assert minute == {0, 15, 30, 45}
    assert hour == {3, 4}
    assert day == {1, 2, 3}
    assert month is None
    assert weekday == {1, 3, 5}
    with pytest.raises(ValueError):
        parse_cron("* * * *")
