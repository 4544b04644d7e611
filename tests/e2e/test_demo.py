"""`roster demo` (what `make run` runs) as a newcomer meets it: a second shell that sources
the env file it wrote syncs the demo's sandbox district; the terminal shows the demo's own
lines and the children log to files, a dead child's last lines shown; a port in use stops
the demo, the API and the sandbox with one plain line; commands on the embedded Postgres end
quietly."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from app.demo import SANDBOX_SEED
from app.embedded import stop_postgres
from app.settings import Settings
from sandbox.district import SandboxDistrict
from sandbox.server import SandboxConfig
from tests.e2e.test_processes import ROSTER
from tests.integration.api.sync_support import forget_jobs
from workers.main import QUEUE_NAME, deserialize_job, serialize_job

ROOT = Path(__file__).resolve().parents[2]
# The demo's district, as the demo generates it.
DEMO_DISTRICT = SandboxDistrict(SandboxConfig.build(size="tiny", seed=SANDBOX_SEED).districts[0]).id


def _shell_environment(**extra: str) -> dict[str, str]:
    """A new shell's: none of the service's settings."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEVER_", "SYNC_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "DEV_DATA_DIR", "PORT"}
    }
    return inherited | extra


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def demo_jobs_forgotten(redis_url: str) -> AsyncIterator[None]:
    """The demo's worker leaves the district's job keys and its cron jobs in Redis."""
    yield
    redis = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )
    try:
        await forget_jobs(redis, [DEMO_DISTRICT])
    finally:
        await redis.aclose()


@pytest.fixture
def demo(
    settings: Settings, tmp_path: Path, pool: asyncpg.Pool, demo_jobs_forgotten: None
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """`roster demo` with a tiny sandbox on the test database; its process, log and
    DEV_DATA_DIR. Stopped with Ctrl-C's signal before the mirror is emptied."""
    data_dir = tmp_path / "devdata"
    log_path = tmp_path / "demo.log"
    env = _shell_environment(
        DATABASE_URL=settings.require_database_url(),
        REDIS_URL=settings.require_redis_url(),
        DEV_DATA_DIR=str(data_dir),
        PORT=str(_free_port()),
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*ROSTER, "demo", "--sandbox-size", "tiny"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log_path, data_dir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_output(
    process: subprocess.Popen[bytes], log_path: Path, text: str, timeout: float = 120
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log_path.read_text(errors="replace")
        if text in output:
            return output
        assert process.poll() is None, f"the demo exited {process.returncode}:\n{output}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} from the demo:\n{log_path.read_text(errors='replace')}")


def test_a_second_shell_that_sources_the_env_file_syncs_the_demo_district(
    demo: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    process, log_path, data_dir = demo
    output = _wait_for_output(process, log_path, "API ready")
    assert f"(district {DEMO_DISTRICT})" in output
    env_file = data_dir / "env"
    assert f"source {env_file}" in output
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    # Another shell: nothing set but what the file exports.
    script = f"source '{env_file}' && exec \"$0\" -m app.cli sync {DEMO_DISTRICT}"
    second = subprocess.run(
        ["bash", "-c", script, ROSTER[0]],
        env=_shell_environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert f"district {DEMO_DISTRICT} run" in second.stderr and "succeeded" in second.stderr

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=40) == 0


def test_the_terminal_shows_the_demo_s_lines_and_a_dead_child_s_log_tail(
    demo: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    process, log_path, data_dir = demo
    output = _wait_for_output(process, log_path, "Press Ctrl-C")
    logs = data_dir / "logs"
    assert f"logs {logs}/{{sandbox,api,worker}}.log" in output
    # The children's JSON lines are in their logs, none in the terminal.
    assert not [line for line in output.splitlines() if line.startswith("{")], output
    worker_log = (logs / "worker.log").read_text()
    assert '"logger":"arq.worker"' in worker_log and '"logger":"arq.worker"' not in output
    assert "sync finished" in worker_log

    worker = next(
        child
        for child in psutil.Process(process.pid).children()
        if child.cmdline()[-1:] == ["worker"]
    )
    worker.kill()
    assert process.wait(timeout=40) == 1
    output = log_path.read_text()
    assert f"worker exited; the end of {logs / 'worker.log'}:" in output
    assert worker_log.splitlines()[-1] in output
    assert output.rstrip().endswith("stopped: worker exited")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["demo"], "set PORT to another"),
        (["api"], "set PORT to another"),
        (["demo", "--port", "{port}"], "choose another with --port"),
        (["sandbox", "--port", "{port}"], "choose another with --port"),
    ],
)
def test_a_port_in_use_stops_start_up_with_one_plain_line(
    settings: Settings, busy_port: int, command: list[str], hint: str
) -> None:
    done = subprocess.run(
        [*ROSTER, *(word.format(port=busy_port) for word in command)],
        env=_shell_environment(
            DATABASE_URL=settings.require_database_url(),
            REDIS_URL=settings.require_redis_url(),
            PORT=str(busy_port),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    # No banner, traceback or JSON log line: only the message.
    assert done.stdout == ""
    assert done.stderr == f"port {busy_port} is in use; {hint}\n"


def test_a_command_on_the_embedded_postgres_ends_without_its_log_lines(
    settings: Settings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "devdata"
    try:
        migrated = subprocess.run(
            [*ROSTER, "migrate"],
            env=_shell_environment(
                REDIS_URL=settings.require_redis_url(), DEV_DATA_DIR=str(data_dir)
            ),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stderr.splitlines()[-1] == "database migrated to head"
        assert "pgserver" not in migrated.stderr and "remaining pids" not in migrated.stderr
    finally:
        stop_postgres(data_dir)
