"""The env file `roster demo` writes for other shells: sourced by a shell, its exports are
the settings the demo ran with."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr
from rich.console import Console

from app.demo import Demo, read_env_file, write_env_file
from app.settings import CleverApiVersion, Settings, load_settings

WRITTEN = {
    "DATABASE_URL": "postgresql://postgres:@/postgres?host=/tmp/a dir/with 'quotes'",
    "REDIS_URL": "unix:///work/.devdata/redis/redis.sock",
    "DEV_DATA_DIR": "/work/.devdata",
    "CLEVER_API_BASE_URL": "http://127.0.0.1:8900",
    "CLEVER_API_VERSION": "v3.1",
    "CLEVER_DISTRICT_TOKENS": "ac4727f7dddf32f27bc0362e8991c105f0e19592",
    "SYNC_EVENTS_INTERVAL_SECONDS": "60",
}


def _sourced(path: Path) -> dict[str, str]:
    """The environment of a shell that sourced `path`, started with almost none."""
    done = subprocess.run(
        ["bash", "-c", f"source '{path}' && env -0"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        timeout=10,
    )
    pairs = (entry.split("=", 1) for entry in done.stdout.decode().split("\0") if "=" in entry)
    return dict(pairs)


def test_a_sourced_env_file_gives_settings_the_values_the_demo_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "devdata" / "env"
    write_env_file(path, WRITTEN)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    environment = _sourced(path)
    assert {name: environment[name] for name in WRITTEN} == WRITTEN
    # This process's environment becomes the sourcing shell's, as far as settings go.
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = load_settings()
    assert settings.database_url == WRITTEN["DATABASE_URL"]
    assert settings.redis_url == WRITTEN["REDIS_URL"]
    assert settings.dev_data_dir == WRITTEN["DEV_DATA_DIR"]
    assert settings.clever_api_base_url == "http://127.0.0.1:8900"
    assert settings.clever_api_version is CleverApiVersion.V3_1
    assert [token.get_secret_value() for token in settings.clever_district_tokens] == [
        WRITTEN["CLEVER_DISTRICT_TOKENS"]
    ]
    assert settings.sync_events_interval_seconds == 60
    assert read_env_file(path) == WRITTEN


def test_a_rewritten_env_file_stays_private_and_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("export OLD=1\n")
    path.chmod(0o644)
    write_env_file(path, {"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_env_file(path) == {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert read_env_file(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    ("tokens", "client_id", "runs_the_sandbox"),
    [
        ("", None, True),  # no credentials at all
        (WRITTEN["CLEVER_DISTRICT_TOKENS"], None, True),  # a shell that sourced the file
        ("a-real-token", None, False),
        ("", "a-client-id", False),
    ],
)
def test_only_the_sandbox_token_it_wrote_is_not_taken_for_clever_credentials(
    tmp_path: Path, tokens: str, client_id: str | None, runs_the_sandbox: bool
) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql://postgres@127.0.0.1/postgres",
        clever_district_tokens=[SecretStr(token) for token in tokens.split(",") if token],
        clever_client_id=client_id,
        dev_data_dir=str(tmp_path),
    )
    demo = Demo(settings, Console(), "127.0.0.1", 8000)
    assert demo._runs_the_sandbox(WRITTEN) is runs_the_sandbox
