"""Child processes and their resources: the sandbox server, measured runs, RSS and CPU.

Memory figures come from the kernel (Linux): `VmHWM` in `/proc/<pid>/status` is a process's
peak resident set size, and writing `5` to `/proc/<pid>/clear_refs` resets it, so one
process can measure several steps separately. A child's peak after it exits comes from
`wait4`'s resource usage.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

# `roster sandbox` keeps the default admin secret of `sandbox.server.serve`.
SANDBOX_ADMIN_SECRET = "sandbox-admin-secret"
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.05
RSS_SAMPLE_SECONDS = 1.0


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_kilobytes(pid: int | str, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident set size of a running process since start (or its last reset), bytes."""
    return _status_kilobytes(pid, "VmHWM") * 1024


def current_rss(pid: int | str = "self") -> int:
    """Resident set size of a running process now, bytes."""
    return _status_kilobytes(pid, "VmRSS") * 1024


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Start the process's peak RSS again from its current RSS; False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a running process has used so far."""
    times = psutil.Process(None if pid == "self" else int(pid)).cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class ChildRun:
    """How a measured child process ran."""

    returncode: int
    seconds: float
    peak_rss: int
    cpu_seconds: float
    log_path: Path
    rss_samples: list[tuple[float, int]]
    """(seconds since start, RSS in bytes), about every RSS_SAMPLE_SECONDS."""

    def log_tail(self, lines: int = 25) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float,
    cwd: Path | None = None,
) -> ChildRun:
    """Run `argv` to completion with its output in `log_path`; wall time, peak RSS, CPU.

    Killed (and TimeoutError raised) after `timeout` seconds; killed too if this process
    is interrupted while waiting.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=cwd
        )
    started = time.perf_counter()
    deadline = started + timeout
    finished: tuple[int, resource.struct_rusage, float] | None = None
    samples: list[tuple[float, int]] = []
    try:
        while finished is None and time.perf_counter() < deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            now = time.perf_counter()
            if pid:
                finished = (status, usage, now)
            else:
                if not samples or now - started - samples[-1][0] >= RSS_SAMPLE_SECONDS:
                    with contextlib.suppress(OSError):  # exited since wait4
                        samples.append((now - started, current_rss(process.pid)))
                time.sleep(POLL_SECONDS)
    finally:
        if finished is None:
            process.kill()
            _, status, _ = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
    if finished is None:
        raise TimeoutError(f"{' '.join(argv[1:4])} ran over {timeout:.0f} s and was killed")
    status, usage, ended = finished
    process.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        returncode=process.returncode,
        seconds=ended - started,
        peak_rss=usage.ru_maxrss * 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        log_path=log_path,
        rss_samples=samples,
    )


@dataclass(frozen=True)
class Sandbox:
    """A sandbox server running in its own process: its first district, and the tokens of
    every district it serves (one unless asked for more)."""

    pid: int
    base_url: str
    district_id: str
    token: str
    counts: dict[str, int]
    tokens: dict[str, str]
    """District id -> token."""


@contextlib.contextmanager
def sandbox_process(
    size: str, *, log_dir: Path, startup_timeout: float, districts: int = 1
) -> Iterator[Sandbox]:
    """Serve `districts` sandbox districts of `size` with `roster sandbox` in a child process.

    Waits until it answers, yields its address and credentials, and stops it afterwards
    (SIGTERM, then SIGKILL after a grace period), whatever happened in the block.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"sandbox-{size}.log"
    argv = [sys.executable, "-m", "app.cli", "sandbox", "--size", size, "--port", str(port)]
    argv += ["--districts", str(districts)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        served = _wait_until_serving(process, base_url, log_path, startup_timeout)
        yield Sandbox(
            pid=process.pid,
            base_url=base_url,
            district_id=served[0]["id"],
            token=served[0]["token"],
            counts=served[0]["counts"],
            tokens={district["id"]: district["token"] for district in served},
        )
    finally:
        stop(process)


def _wait_until_serving(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {SANDBOX_ADMIN_SECRET}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox exited ({process.returncode}):\n{tail(log_path)}")
        try:
            response = httpx.get(f"{base_url}/sandbox/districts", headers=headers, timeout=5.0)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        response.raise_for_status()
        districts: list[dict[str, Any]] = response.json()["data"]
        return districts
    raise TimeoutError(f"the sandbox did not answer within {timeout:.0f} s:\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a child: SIGTERM, then SIGKILL if it is still running after a grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
