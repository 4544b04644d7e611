"""Fixtures of the browser tests: the console in a real headless Chromium.

One stack serves the whole session: the scratch database and Redis db of `tests/conftest.py`,
a sandbox of two tiny districts synced once before the first test, a `roster api` process and
a `roster worker` process. Chromium is Debian's (`shutil.which("chromium")`): Playwright only
drives it and never downloads a browser of its own. axe-core comes from `.tools/`, named by
`AXE_CORE_JS`. `make browser-deps` installs both; `make test-browser` runs this suite.

A test takes `page` (a fresh browser context at laptop size, without cookies) or `signed_in`
(the same, past the sign-in form with an admin key), and for every page it visits calls
`axe(page, name)` (fails on a serious or critical violation; every finding is printed at the
end of the run and written to `build/axe.json`) and `shot(page, name)`
(`build/screenshots/<name>-<size>.png` at laptop and phone size). Every test in this folder is
marked `browser`, which `make test` leaves out.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import health_check_key_suffix
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from app.api.keys import Scope, create_key
from app.settings import Settings
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.workers import Workers
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps, sync_ok
from tests.support.mirror import create_mirror_pool
from workers.main import QUEUE_NAME, deserialize_job, serialize_job

BUILD = Path(__file__).resolve().parents[2] / "build"
SCREENSHOTS = BUILD / "screenshots"
AXE_REPORT = BUILD / "axe.json"
LAPTOP = ViewportSize(width=1366, height=768)
SIZES = {"1366x768": LAPTOP, "390x844": ViewportSize(width=390, height=844)}
# Violations of these impacts fail the test; minor and moderate ones are reported only.
FAILING_IMPACTS = {"serious", "critical"}
# A tiny district's sync on a busy 2-core machine takes a few seconds; this is far more.
RUN_TIMEOUT_MS = 60_000
ADMIN_KEY_NAME = "browser admin"
CONSOLE_KEY_NAME = "browser console"

_HERE = Path(__file__).resolve().parent
_AXE_FINDINGS = pytest.StashKey[dict[str, dict[str, Any]]]()

Check = Callable[[Page, str], Awaitable[None]]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_AXE_FINDINGS] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests `browser` before `-m` selects (so `make test` skips them)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with what the API and the worker said."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("the API's and the worker's output", stack.log_tails()))
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Each checked page's axe-core findings: violations by impact, and the checks axe could
    not decide (`review`); also written to build/axe.json."""
    findings = config.stash.get(_AXE_FINDINGS, {})
    if not findings:
        return
    terminalreporter.section("axe-core findings")
    for name, found in sorted(findings.items()):
        listed = [f"{v['impact']} {v['id']} x{v['nodes']}" for v in found["violations"]]
        listed += [f"review {v['id']} x{v['nodes']}" for v in found["incomplete"]]
        terminalreporter.write_line(f"{name} {found['path']}: {'; '.join(listed) or 'none'}")
    BUILD.mkdir(exist_ok=True)
    AXE_REPORT.write_text(json.dumps(findings, indent=2, sort_keys=True) + "\n")
    terminalreporter.write_line(f"written to {AXE_REPORT}")


# --- the stack --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """What the browser talks to, and what the tests check it against."""

    url: str  # the API process's base URL
    pool: asyncpg.Pool  # on the test database
    redis: ArqRedis  # the Redis db the API and the worker use
    sandbox: RunningSandbox
    workers: Workers
    logs: Path  # the API's and the worker's output
    admin_key: str
    console_key: str

    @property
    def routine(self) -> SandboxDistrict:
        """A district left as generated, which tests sync again."""
        return self.sandbox.districts[0]

    @property
    def guarded(self) -> SandboxDistrict:
        """A district whose students the held-run test mostly unshares."""
        return self.sandbox.districts[1]

    async def run(self, run_id: str) -> asyncpg.Record:
        """The run's row in `sync_runs`."""
        row: asyncpg.Record | None = await self.pool.fetchrow(
            "SELECT * FROM sync_runs WHERE id = $1::uuid", run_id
        )
        assert row is not None, f"no sync run {run_id}"
        return row

    def worker_said(self, message: str, run_id: str) -> list[dict[str, Any]]:
        """The worker's log lines (JSON) with this message about the run."""
        said = []
        for path in sorted(self.logs.glob("worker-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    logged = json.loads(line)
                except ValueError:
                    continue
                if logged.get("message") == message and logged.get("run_id") == run_id:
                    said.append(logged)
        return said

    def log_tails(self) -> str:
        """The end of the API's and the worker's output, for failure reports."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.logs.glob("*.log"))
        )

    async def sessions(self) -> int:
        """How many console sessions Redis holds."""
        return len(await self.redis.keys("roster:console:session:*"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _api_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`roster api` on a free loopback port for the block; yields its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}} | {
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
    }
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _worker_alive(redis: ArqRedis, workers: Workers) -> None:
    """Until the worker has written its health check, so it takes jobs."""
    deadline = time.monotonic() + 30
    while not await redis.exists(QUEUE_NAME + health_check_key_suffix):
        assert time.monotonic() < deadline, f"the worker did not start\n{workers.logs()}"
        await asyncio.sleep(0.2)


async def _key(pool: asyncpg.Pool, name: str, scope: Scope) -> str:
    async with pool.acquire() as connection:
        created = await create_key(connection, name=name, scopes=[scope])
    return created.secret


@pytest.fixture(scope="session")
async def stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The sandbox's districts synced once, then the API and a worker serving them. The
    database and the Redis db are dropped and emptied after the session (tests/conftest.py)."""
    logs = tmp_path_factory.mktemp("browser-stack")
    pool = await create_mirror_pool(settings.require_database_url())
    redis = await create_pool(
        RedisSettings.from_dsn(settings.require_redis_url()),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )
    workers = Workers(settings, logs)
    try:
        with run_in_thread(SandboxConfig.build(size="tiny", seed=7001, districts=2)) as sandbox:
            for district in sandbox.districts:
                configured = sandbox_settings(settings, sandbox=sandbox, district=district)
                await sync_ok(sync_deps(configured, pool=pool), district=district)
            admin_key = await _key(pool, ADMIN_KEY_NAME, Scope.ADMIN)
            console_key = await _key(pool, CONSOLE_KEY_NAME, Scope.CONSOLE)
            workers.start(sandbox=sandbox)
            await _worker_alive(redis, workers)
            with _api_process(settings, logs / "api.log") as url:
                yield Stack(url, pool, redis, sandbox, workers, logs, admin_key, console_key)
    finally:
        workers.stop_all()
        await redis.aclose()
        await pool.close()


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no `chromium` on the PATH: `make browser-deps` installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    """A browser profile of the test's own (no cookies), at laptop size. It lets the test
    inject axe-core's script, which the console's content security policy (no inline
    script) would otherwise block, as it should."""
    context = await browser.new_context(base_url=stack.url, viewport=LAPTOP, bypass_csp=True)
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def sign_in(page: Page, key: str) -> None:
    """Fill in and send the sign-in form."""
    await page.goto("/ui/login")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


@pytest.fixture
async def signed_in(page: Page, stack: Stack) -> Page:
    """`page` signed in with an admin key, on the districts page."""
    await sign_in(page, stack.admin_key)
    await expect(page).to_have_url(f"{stack.url}/ui/")
    return page


async def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    """The console's session cookie in the browser, if it holds one."""
    for cookie in await context.cookies():
        if cookie.get("name") == "roster_console":
            return dict(cookie)
    return None


# --- what every visited page gets -------------------------------------------------------


@pytest.fixture(scope="session")
def axe_script() -> Path:
    named = os.environ.get("AXE_CORE_JS", "")
    if not named or not Path(named).is_file():
        pytest.fail("AXE_CORE_JS names no axe.min.js: run the suite with `make test-browser`")
    return Path(named)


def _summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": rule["id"],
            "impact": rule["impact"],
            "nodes": len(rule["nodes"]),
            "help": rule["help"],
            "targets": [node["target"] for node in rule["nodes"][:5]],
        }
        for rule in results
    ]


@pytest.fixture
def axe(request: pytest.FixtureRequest, axe_script: Path, stack: Stack) -> Check:
    """`await axe(page, name)`: axe-core's rules on the page as it is; a serious or critical
    violation fails the test. The findings are kept under `name` for the run's summary."""
    findings = request.config.stash[_AXE_FINDINGS]

    async def check(page: Page, name: str) -> None:
        await page.add_script_tag(path=axe_script)
        results: dict[str, Any] = await page.evaluate(
            "axe.run(document, {resultTypes: ['violations', 'incomplete']})"
        )
        assert results["passes"], f"axe-core checked nothing on {name}"
        violations = _summary(results["violations"])
        findings[name] = {
            "path": page.url.removeprefix(stack.url),
            "violations": violations,
            "incomplete": _summary(results["incomplete"]),
        }
        failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
        assert not failing, f"axe-core on {name}: {json.dumps(failing, indent=2)}"

    return check


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """build/screenshots/, emptied of the last run's pictures."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


# Elements reaching past the right edge of the window, outside the scrolling table boxes.
_OVERFLOWING = """() => [...document.body.querySelectorAll("*")]
    .filter(e => !e.closest(".scroll") && e.getBoundingClientRect().right > innerWidth + 0.5)
    .map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
              + (e.className ? "." + String(e.className).split(" ").join(".") : ""))"""


@pytest.fixture
def shot(screenshots: Path) -> Check:
    """`await shot(page, name)`: the whole page at each of SIZES, as `<name>-<size>.png`.
    Fails if the page is wider than the window at a size (only tables may scroll sideways,
    in their own boxes): text must reflow on a phone."""

    async def take(page: Page, name: str) -> None:
        for size, viewport in SIZES.items():
            await page.set_viewport_size(viewport)
            await page.screenshot(path=screenshots / f"{name}-{size}.png", full_page=True)
            overflowing: list[str] = await page.evaluate(_OVERFLOWING)
            assert not overflowing, f"{name} at {size}: wider than the window: {overflowing}"
        await page.set_viewport_size(LAPTOP)

    return take
