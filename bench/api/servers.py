"""The servers measured: `roster api` with N worker processes, and a minimal FastAPI app on
the same uvicorn, answering a fixed body: what the framework and server cost alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.processes import free_port, stop, tail

STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class ApiServer:
    pid: int
    host: str
    port: int
    workers: int
    label: str


def _log_end(path: Path) -> str:
    # JSON log lines carry whole tracebacks: the last few thousand characters are plenty.
    return tail(path, 5)[-3000:]


@contextmanager
def _serving(
    argv: list[str], env: dict[str, str], log_path: Path, host: str, port: int, ready: str
) -> Iterator[int]:
    """Run `argv` until the block ends, once `ready` (a path) answers 200; its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{argv[2]} exited ({process.returncode}):\n{_log_end(log_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{argv[2]} did not answer:\n{_log_end(log_path)}")
            try:
                if httpx.get(f"http://{host}:{port}{ready}", timeout=2.0).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield process.pid
    finally:
        stop(process)


@contextmanager
def api_server(
    database_url: str,
    redis_url: str,
    workers: int,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    label: str | None = None,
) -> Iterator[ApiServer]:
    """`roster api` in a child process, stopped after the block. The load's one key would
    soon spend its requests per minute: the rate limit is off unless `extra_env` sets it."""
    host, port = "127.0.0.1", free_port()
    env = (
        dict(os.environ)
        | {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_PER_MINUTE": "0",
        }
        | (extra_env or {})
    )
    argv = [sys.executable, "-m", "app.cli", "api", "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers)]
    with _serving(argv, env, log_path, host, port, "/healthz") as pid:
        yield ApiServer(pid, host, port, workers, label or f"api x{workers}")


@contextmanager
def minimal_server(body: bytes, log_path: Path) -> Iterator[ApiServer]:
    """`bench.api.minimal` on uvicorn as `roster api` runs it, answering `body`."""
    host, port = "127.0.0.1", free_port()
    body_path = log_path.with_suffix(".body.json")
    body_path.parent.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(body)
    env = dict(os.environ) | {"BENCH_MINIMAL_BODY": str(body_path)}
    argv = [sys.executable, "-m", "bench.api.minimal", "--host", host, "--port", str(port)]
    with _serving(argv, env, log_path, host, port, "/v1/minimal/ready") as pid:
        yield ApiServer(pid, host, port, 1, "minimal")
