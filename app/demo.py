"""`roster demo` (what `make run` runs): the whole service on one machine.

Migrates, then runs the API and a worker as child processes. Without Clever credentials it
also runs the Clever sandbox with a generated district and has the worker sync it once, so
a newcomer sees data at once. Ctrl-C stops the children in order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console

from app.api.keys import Scope, create_key, find_key
from app.migrations import upgrade
from app.mirror.pg import create_pool
from app.settings import Settings
from app.sync import runs
from app.sync.queue import create_queue, request_sync
from app.sync.runs import FINAL_STATUSES, RunMode, RunTrigger

SANDBOX_SIZE = "S"
SANDBOX_SEED = 1
READY_TIMEOUT_SECONDS = 90.0
FIRST_SYNC_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class SandboxDistrictInfo:
    district_id: str
    token: str
    base_url: str


class Demo:
    def __init__(self, settings: Settings, console: Console, host: str, port: int) -> None:
        self.settings = settings
        self.console = console
        self.host = host
        self.port = port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def run(self) -> int:
        """Run until Ctrl-C (0) or until a child process dies (1)."""
        upgrade(self.settings.require_database_url())
        env = os.environ.copy()
        sandbox = None
        if not (self.settings.clever_district_tokens or self.settings.clever_client_id):
            sandbox = _sandbox_district(_free_port())
            env |= {
                "CLEVER_API_BASE_URL": sandbox.base_url,
                "CLEVER_API_VERSION": "v3.1",
                "CLEVER_DISTRICT_TOKENS": sandbox.token,
            }
            # Changes made in the sandbox show up within a minute.
            env.setdefault("SYNC_EVENTS_INTERVAL_SECONDS", "60")
            self._spawn(
                "sandbox", env, "--size", SANDBOX_SIZE, "--seed", str(SANDBOX_SEED),
                "--port", sandbox.base_url.rsplit(":", 1)[1],
            )  # fmt: skip
        self._spawn("api", env, "--host", self.host, "--port", str(self.port))
        self._spawn("worker", env)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        base_url = f"http://{self.host}:{self.port}"
        try:
            if not self._wait_until(lambda: _answers(f"{base_url}/readyz")):
                return 0 if self.stopping else 1
            if sandbox is not None:
                self._wait_until(lambda: _answers(f"{sandbox.base_url}/sandbox/districts", 401))
                self.console.print(
                    f"Clever sandbox at {sandbox.base_url} (district {sandbox.district_id})"
                )
                asyncio.run(self._first_sync(sandbox.district_id))
            key = asyncio.run(self._development_key())
            self.console.print(f"[green]API ready[/green] at {base_url}  (docs: {base_url}/docs)")
            self.console.print(f"  health {base_url}/healthz  readiness {base_url}/readyz")
            self.console.print(f"  metrics {base_url}/metrics")
            # Never wrapped: the key must stay one copyable word, whatever the terminal.
            self.console.print(f"  development API key (every scope): {key}", soft_wrap=True)
            self.console.print(
                f'  try: curl -H "Authorization: Bearer {key}" {base_url}/v1/districts',
                soft_wrap=True,
            )
            self.console.print("Press Ctrl-C to stop.")
            while not self.stopping and self._children_alive():
                time.sleep(0.2)
        finally:
            failed = [name for name, p in self.processes.items() if p.poll() not in (None, 0)]
            _terminate(self.processes.values())
        if failed and not self.stopping:
            self.console.print(f"[red]stopped: {', '.join(failed)} exited[/red]")
            return 1
        self.console.print("stopped")
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _spawn(self, name: str, env: dict[str, str], *args: str) -> None:
        # Children get their own session: Ctrl-C reaches only the demo, which stops them.
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", name, *args], env=env, start_new_session=True
        )

    def _children_alive(self) -> bool:
        return all(process.poll() is None for process in self.processes.values())

    def _wait_until(self, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.stopping and self._children_alive():
            if ready():
                return True
            time.sleep(0.2)
        return False

    async def _development_key(self) -> str:
        """An API key with every scope, kept under DEV_DATA_DIR so restarts reuse it."""
        path = Path(self.settings.dev_data_dir) / "api-key"
        connection = await asyncpg.connect(self.settings.asyncpg_database_url)
        try:
            if path.exists():
                secret = path.read_text().strip()
                if await find_key(connection, secret) is not None:
                    return secret
            created = await create_key(connection, name="development", scopes=list(Scope))
        finally:
            await connection.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(created.secret + "\n")
        return created.secret

    async def _first_sync(self, district_id: str) -> None:
        """Have the worker sync the sandbox district, unless it was synced before."""
        pool = await create_pool(self.settings, max_size=2)
        redis = await create_queue(self.settings)
        try:
            synced = await pool.fetchval(
                "SELECT last_full_sync_at FROM district_sync_state WHERE district_id = $1",
                district_id,
            )
            if synced is not None:
                self.console.print(f"district {district_id} last synced {synced:%Y-%m-%d %H:%M}")
                return
            request = await request_sync(
                redis, pool, district_id, mode=RunMode.FULL, trigger=RunTrigger.CLI
            )
            self.console.print(f"first sync of district {district_id} (run {request.run_id})...")
            async with pool.acquire() as connection:
                await self._wait_for_run(connection, request.run_id)
        finally:
            await redis.aclose()
            await pool.close()

    async def _wait_for_run(self, connection: asyncpg.Connection, run_id: uuid.UUID) -> None:
        deadline = time.monotonic() + FIRST_SYNC_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.stopping and self._children_alive():
            run = await runs.get_run(connection, run_id)
            if run is not None and run["status"] in {*FINAL_STATUSES, "held"}:
                counts = run["counts"] or {}
                users = counts.get("users", {}).get("created", 0)
                sections = counts.get("sections", {}).get("created", 0)
                self.console.print(
                    f"first sync {run['status']}: {users} users, {sections} sections, "
                    f"{run['warnings_count']} data warnings"
                    + (f" ({run['error']})" if run["error"] else "")
                )
                return
            await asyncio.sleep(0.5)


def _sandbox_district(port: int) -> SandboxDistrictInfo:
    """The district the sandbox will serve (it is generated deterministically from its seed)."""
    from sandbox.district import SandboxDistrict
    from sandbox.server import SandboxConfig

    config = SandboxConfig.build(size=SANDBOX_SIZE, seed=SANDBOX_SEED).districts[0]
    district = SandboxDistrict(config)
    return SandboxDistrictInfo(district.id, district.token, f"http://127.0.0.1:{port}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str, *statuses: int) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (statuses or (200,))
    except httpx.HTTPError:
        return False


def _terminate(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    children = list(processes)
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in children:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
