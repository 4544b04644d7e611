"""The real `roster` processes: the worker's life cycle and start-up configuration errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings

from app.settings import Settings
from sandbox.server import RunningSandbox
from tests.conftest import with_redis_db
from workers.main import QUEUE_NAME, deserialize_job, serialize_job

ROSTER = [sys.executable, "-m", "app.cli"]


def cli_environment(
    settings: Settings, sandbox: RunningSandbox, *, page_size: int
) -> dict[str, str]:
    """The environment of a `roster` command against the test servers and the sandbox's
    districts: this process's own, without its Clever and sync settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEVER_", "SYNC_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    } | {
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "CLEVER_API_BASE_URL": sandbox.base_url,
        "CLEVER_API_VERSION": "v3.1",
        "CLEVER_DISTRICT_TOKENS": ",".join(d.token for d in sandbox.districts),
        "CLEVER_PAGE_SIZE": str(page_size),
    }


def _environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
    }
    return env | extra


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [*ROSTER, "worker"], env=_environment(settings), stdout=log, stderr=log
        )
        yield process
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until_healthy(settings: Settings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check = subprocess.run(
            [*ROSTER, "worker", "--check"], env=_environment(settings), capture_output=True
        )
        if check.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("the worker never reported itself healthy")


def test_worker_runs_jobs_and_stops_on_sigterm(
    settings: Settings, worker_process: subprocess.Popen[bytes]
) -> None:
    _wait_until_healthy(settings)

    async def run_job() -> dict[str, str]:
        redis = await create_pool(
            RedisSettings.from_dsn(settings.require_redis_url()),
            job_serializer=serialize_job,
            job_deserializer=deserialize_job,
            default_queue_name=QUEUE_NAME,
        )
        try:
            job = await redis.enqueue_job("check_connections")
            assert job is not None
            result: dict[str, str] = await job.result(timeout=30)
            return result
        finally:
            await redis.aclose()

    result = asyncio.run(run_job())
    assert result["redis"] == "ok"
    assert result["postgres"].split(".")[0].isdigit()

    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(timeout=20) == 0


def test_worker_check_fails_without_a_worker(settings: Settings) -> None:
    env = _environment(settings, REDIS_URL=with_redis_db(settings.require_redis_url(), 13))
    check = subprocess.run([*ROSTER, "worker", "--check"], env=env, capture_output=True)
    assert check.returncode == 1


@pytest.mark.parametrize("command", ["api", "worker", "migrate"])
def test_bad_setting_stops_start_up_naming_the_variable(settings: Settings, command: str) -> None:
    result = subprocess.run(
        [*ROSTER, command],
        env=_environment(settings, CLEVER_API_VERSION="v9"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CLEVER_API_VERSION" in result.stderr
