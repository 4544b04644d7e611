"""`roster demo` (what `make run` runs): the whole service on one machine.

Migrates, then runs the API and a worker as child processes. Without Clever credentials it
also runs the Clever sandbox with a generated district and has the worker sync it once, so
a newcomer sees data at once. Ctrl-C stops the children in order. The children's JSON logs
go to DEV_DATA_DIR/logs/{api,worker,sandbox}.log, so the terminal shows only what the demo
says (and the end of a child's log, should it die).

The settings the children run with (the embedded servers' URLs, the sandbox's URL and
token) are written to DEV_DATA_DIR/env as shell `export` lines: `source .devdata/env` in
another shell and every `roster` command there reaches the same Postgres, Redis and
sandbox. Those sandbox settings are not taken for Clever credentials when the demo starts
again from such a shell.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
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
from app.cli import port_in_use
from app.migrations import upgrade
from app.mirror.pg import create_pool
from app.settings import Settings
from app.sync import runs
from app.sync.queue import create_queue, request_sync
from app.sync.runs import FINAL_STATUSES, RunMode, RunTrigger

SANDBOX_SIZE = "S"
SANDBOX_SEED = 1
# The sandbox's own default port, when free: the env file then stays the same across starts.
SANDBOX_PORT = 8900
ENV_FILE = "env"
# What the env file exports of the sandbox's settings, beside the servers' URLs.
SANDBOX_VARIABLES = (
    "CLEVER_API_BASE_URL",
    "CLEVER_API_VERSION",
    "CLEVER_DISTRICT_TOKENS",
    "SYNC_EVENTS_INTERVAL_SECONDS",
)
LOG_DIR = "logs"
# How much of a dead child's log the demo shows.
LOG_TAIL_LINES = 20
READY_TIMEOUT_SECONDS = 90.0
FIRST_SYNC_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class SandboxDistrictInfo:
    district_id: str
    token: str
    base_url: str


class Demo:
    def __init__(
        self,
        settings: Settings,
        console: Console,
        host: str,
        port: int,
        sandbox_size: str = SANDBOX_SIZE,
    ) -> None:
        self.settings = settings
        self.console = console
        self.host = host
        self.port = port
        self.sandbox_size = sandbox_size
        self.env_path = Path(settings.dev_data_dir) / ENV_FILE
        self.log_dir = Path(settings.dev_data_dir) / LOG_DIR
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def run(self) -> int:
        """Run until Ctrl-C (0) or until a child process dies (1)."""
        # Alembic's line per migration is for `roster migrate`; here one line says it all.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        upgrade(self.settings.require_database_url())
        self.console.print("database migrated")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = os.environ.copy()
        sandbox = None
        written = read_env_file(self.env_path)
        if self._runs_the_sandbox(written):
            sandbox = _sandbox_district(self.sandbox_size, _sandbox_port(written))
            env |= {
                "CLEVER_API_BASE_URL": sandbox.base_url,
                "CLEVER_API_VERSION": "v3.1",
                "CLEVER_DISTRICT_TOKENS": sandbox.token,
            }
            # Changes made in the sandbox show up within a minute.
            env.setdefault("SYNC_EVENTS_INTERVAL_SECONDS", "60")
            self._spawn(
                "sandbox", env, "--size", self.sandbox_size, "--seed", str(SANDBOX_SEED),
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
            self._write_env_file(env, with_sandbox=sandbox is not None)
            if sandbox is not None:
                asyncio.run(self._first_sync(sandbox.district_id))
            key = asyncio.run(self._development_key())
            self.console.print(f"[green]API ready[/green] at {base_url}  (docs: {base_url}/docs)")
            self.console.print(f"  health {base_url}/healthz  readiness {base_url}/readyz")
            self.console.print(f"  metrics {base_url}/metrics")
            names = ",".join(self.processes)
            self.console.print(
                f"  logs {self.log_dir}/{{{names}}}.log", highlight=False, soft_wrap=True
            )
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
            for name in failed:
                self._show_log_tail(name)
            self.console.print(f"[red]stopped: {', '.join(failed)} exited[/red]")
            return 1
        self.console.print("stopped")
        return 0

    def _runs_the_sandbox(self, written: dict[str, str]) -> bool:
        """Without Clever credentials, or with only the sandbox's token this demo wrote to
        the env file (a shell that sourced it runs `make run` again)."""
        if self.settings.clever_client_id:
            return False
        tokens = ",".join(t.get_secret_value() for t in self.settings.clever_district_tokens)
        return not tokens or tokens == written.get("CLEVER_DISTRICT_TOKENS")

    def _write_env_file(self, env: dict[str, str], *, with_sandbox: bool) -> None:
        """Write the settings other shells need, readable by this user only, and say how to
        use them. Clever credentials of the user's own are not copied: they came from the
        user's environment or `.env`, which other shells read as well."""
        values = {
            "DATABASE_URL": self.settings.require_database_url(),
            "REDIS_URL": self.settings.require_redis_url(),
            "DEV_DATA_DIR": str(Path(self.settings.dev_data_dir).resolve()),
        }
        if with_sandbox:
            values |= {name: env[name] for name in SANDBOX_VARIABLES}
        write_env_file(self.env_path, values)
        self.console.print(
            f"settings for roster commands in other shells: source {self.env_path}",
            highlight=False,
            soft_wrap=True,
        )

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _spawn(self, name: str, env: dict[str, str], *args: str) -> None:
        # Children get their own session: Ctrl-C reaches only the demo, which stops them.
        # Each writes to a log of its own, begun anew at every start.
        with self._log_path(name).open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "app.cli", name, *args],
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _show_log_tail(self, name: str) -> None:
        """The last lines of a child's log, so its death is explained where it is seen."""
        path = self._log_path(name)
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return
        self.console.print(f"[red]{name} exited[/red]; the end of {path}:", highlight=False)
        for line in lines:
            self.console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)

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


def _sandbox_district(size: str, port: int) -> SandboxDistrictInfo:
    """The district the sandbox will serve (it is generated deterministically from its seed)."""
    from sandbox.district import SandboxDistrict
    from sandbox.server import SandboxConfig

    config = SandboxConfig.build(size=size, seed=SANDBOX_SEED).districts[0]
    district = SandboxDistrict(config)
    return SandboxDistrictInfo(district.id, district.token, f"http://127.0.0.1:{port}")


def _sandbox_port(written: dict[str, str]) -> int:
    """The sandbox's port of the last start, else its default, when free; else any."""
    last = written.get("CLEVER_API_BASE_URL", "").rpartition(":")[2]
    for port in (int(last) if last.isdigit() else None, SANDBOX_PORT):
        if port is not None and not port_in_use("127.0.0.1", port):
            return port
    return _free_port()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """`values` as shell `export` lines, in a file only this user may read (it holds
    tokens), replaced whole so a shell never sources half of it."""
    lines = [
        "# Written by `roster demo` (make run): the settings it runs with.",
        f"# In another shell: source {path}",
        *(f"export {name}={shlex.quote(value)}" for name, value in values.items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines) + "\n")
    os.chmod(partial, 0o600)  # a leftover partial file may have had other bits
    os.replace(partial, path)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables an env file of `write_env_file` exports (none when there is none)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote: a line edited by hand, not ours
            continue
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            values[name] = value
    return values


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
