"""`roster worker` processes for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from app.settings import Settings
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox

ROSTER = [sys.executable, "-m", "app.cli"]
# Small pages and some latency per request stretch a tiny district's fetch over seconds.
PAGE_SIZE = 4


class Workers:
    """`roster worker` processes started by a test, stopped (or reaped) after it."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self._settings = settings
        self._log_dir = log_dir
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        *,
        sandbox: RunningSandbox,
        district: SandboxDistrict | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """A worker syncing `district` (every district of the sandbox when None) from
        `sandbox` on the test database and Redis."""
        served = [district] if district is not None else sandbox.districts
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CLEVER_", "SYNC_", "SENSITIVE_"))
            and key not in {"DATABASE_URL", "REDIS_URL"}
        }
        env = (
            inherited
            | {
                "DATABASE_URL": self._settings.require_database_url(),
                "REDIS_URL": self._settings.require_redis_url(),
                "CLEVER_API_BASE_URL": sandbox.base_url,
                "CLEVER_API_VERSION": "v3.1",
                "CLEVER_DISTRICT_TOKENS": ",".join(
                    served_district.token for served_district in served
                ),
                "CLEVER_PAGE_SIZE": str(PAGE_SIZE),
                "CLEVER_MAX_RETRIES": "2",
                # Far from any test run: the scheduled full sync must not join in.
                "SYNC_FULL_CRON": "0 3 29 2 *",
            }
            | (extra_env or {})
        )
        log_path = self._log_dir / f"worker-{len(self._processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*ROSTER, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._processes.append(process)
        return process

    def logs(self) -> str:
        """The end of every worker's output, for failure messages."""
        tails = []
        for path in sorted(self._log_dir.glob("worker-*.log")):
            text = path.read_text(errors="replace")
            tails.append(f"--- {path.name}\n{text[-3000:]}")
        return "\n".join(tails)

    def stop_all(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
