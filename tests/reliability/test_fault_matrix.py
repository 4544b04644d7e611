"""The fault matrix: every fault, in a full and an incremental sync, ends the run well.

A tiny sandbox district is mirrored into a base database, then changed (updates, deletes,
new records, a student moving school, terms rolling over). Each case copies the base
database, runs one sync with the fault injected, and checks:

* the run ends `succeeded` (after retries) or `failed` with an error naming the cause;
* the mirror's fingerprint is the one before the run or the golden one an uninterrupted
  run gives (computed once per mode), never a mix;
* no run is left `running`, no staging table is left behind;
* the next run, without the fault and without any manual step, succeeds and reaches the
  golden fingerprint.

Clever faults go through the sandbox's fault settings and a TCP fault proxy of our own
between the sync and the sandbox; Postgres faults through a second proxy in front of
Postgres (a restart: every connection cut, new ones refused for two seconds),
`pg_terminate_backend`, and a COPY failing as on a full disk. The outcomes are written to
`build/reliability/fault_matrix.md`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import SecretStr

from app.mirror import merge
from app.mirror.staging import Staging
from app.settings import CleverApiVersion, Settings, to_asyncpg_url
from app.sync.queue import request_sync
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from app.sync.tokens import DistrictTokens
from sandbox.faults import FaultConfig
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.workers import Workers
from tests.integration.api.sync_support import arq_queue, forget_jobs
from tests.reliability.support import (
    cloned_database,
    fingerprint,
    leftover_staging,
    migrated_database,
    mirror_pool,
    running_runs,
    write_report,
)
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.reliability

RESULTS: list[dict[str, Any]] = []


@dataclass
class World:
    sandbox: RunningSandbox
    base: str  # database name of the mirror before the changes are synced
    server_url: str
    before: dict[str, str]
    golden: dict[RunMode, dict[str, str]]
    clever_proxy: FaultProxy
    clever_url: str


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=41)) as running:
        yield running


@pytest.fixture(scope="module")
def base_database(server_database_url: str) -> Iterator[str]:
    with migrated_database(server_database_url, "roster_rel_base") as name:
        yield name


def _settings(
    settings: Settings, sandbox: RunningSandbox, *, clever_url: str, url: str
) -> Settings:
    return settings.model_copy(
        update={
            "database_url": url,
            "clever_api_base_url": clever_url,
            "clever_oauth_base_url": sandbox.base_url,
            "clever_api_version": CleverApiVersion.V3_1,
            "clever_district_tokens": [],
            "clever_client_id": sandbox.state.config.client_id,
            "clever_client_secret": SecretStr(sandbox.state.config.client_secret),
            "clever_tokens_refresh_seconds": 0,
            "clever_page_size": 10,
            "clever_timeout_seconds": 1.0,
            "clever_max_retries": 3,
        }
    )


def _deps(settings: Settings, pool: asyncpg.Pool) -> SyncDeps:
    return SyncDeps(
        settings=settings,
        pool=pool,
        tokens=DistrictTokens(settings),
        database_retry_delays=(0.5,),
    )


async def _sync(deps: SyncDeps, district_id: str, mode: RunMode) -> Any:
    return await sync_district(deps, district_id, mode=mode, trigger=RunTrigger.CLI)


def _change(sandbox: RunningSandbox) -> None:
    """What the faulted runs are to mirror: a bit of everything a district does."""
    district = sandbox.districts[0]
    truth = district.truth
    students = truth.ids("users", "student")
    teachers = truth.ids("users", "teacher")
    sections = truth.ids("sections")
    schools = truth.ids("schools")
    for student in students[:5]:
        district.update(student, {"name": {"first": "Changed"}})
    for record in (students[5], teachers[0], sections[0]):
        district.delete(record)
    new_student = district.create("users", role="student")
    district.add_students(sections[1], [new_student])
    district.move_student(students[6], schools[-1])
    district.roll_over_terms()


@pytest.fixture(scope="module")
async def world(
    sandbox: RunningSandbox, base_database: str, server_database_url: str, settings: Settings
) -> AsyncIterator[World]:
    clever_proxy = FaultProxy("127.0.0.1", urlsplit(sandbox.base_url).port or 80)
    clever_url = f"http://127.0.0.1:{await clever_proxy.start()}"
    district_id = sandbox.districts[0].id
    base_url = _with_name(server_database_url, base_database)
    async with mirror_pool(base_url) as pool:
        deps = _deps(_settings(settings, sandbox, clever_url=clever_url, url=base_url), pool)
        assert (await _sync(deps, district_id, RunMode.FULL)).status is RunStatus.SUCCEEDED
        before = await fingerprint(pool)
    _change(sandbox)
    golden = {}
    for mode in RunMode:
        async with (
            cloned_database(server_database_url, base_database) as url,
            mirror_pool(url) as pool,
        ):
            deps = _deps(_settings(settings, sandbox, clever_url=clever_url, url=url), pool)
            outcome = await _sync(deps, district_id, mode)
            assert outcome.status is RunStatus.SUCCEEDED, outcome.error
            golden[mode] = await fingerprint(pool)
    assert golden[RunMode.FULL] != before
    yield World(
        sandbox, base_database, server_database_url, before, golden, clever_proxy, clever_url
    )
    await clever_proxy.stop()
    write_report(
        "fault_matrix",
        RESULTS,
        ["fault", "mode", "status", "error", "mirror", "next run", "seconds"],
    )


def _with_name(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _through(url: str, port: int) -> str:
    """`url` with its host and port replaced by a local proxy's."""
    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1:{port}"))


# --- the faults ---------------------------------------------------------------------------


@dataclass
class Case:
    """What a fault needs while its run goes on."""

    world: World
    deps: SyncDeps
    pool: asyncpg.Pool
    url: str
    mode: RunMode
    monkeypatch: pytest.MonkeyPatch
    pg_proxy: FaultProxy | None = None

    @property
    def district(self) -> Any:
        return self.world.sandbox.districts[0]

    def faults(self, **changes: Any) -> None:
        state = self.world.sandbox.state
        state.set_faults(dataclasses.replace(state.faults, **changes))

    async def mid_run(self) -> None:
        """Until the run has read part of the district (its fetch stretched by latency): the
        schools of a full sync (users and sections follow), a page of events."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            progress = await self.pool.fetchval(
                "SELECT progress::text FROM sync_runs WHERE status = 'running'"
            )
            if progress and ('"schools"' in progress or '"events"' in progress):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the run never got mid-way")

    async def terminate_backends(self) -> None:
        admin = await asyncpg.connect(to_asyncpg_url(self.url))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()


Inject = Callable[[Case], Awaitable[None]]


async def storm_of_429(case: Case) -> None:
    case.faults(rate_limit_every=2, retry_after=True, rate_limit_reset_seconds=0.05)


async def burst_of_5xx(case: Case) -> None:
    case.faults(error_every=5, error_burst=2)


async def latency_beyond_timeout(case: Case) -> None:
    case.world.clever_proxy.latency = 1.5  # the client waits 1 s


async def truncated_json(case: Case) -> None:
    case.faults(truncate_every=3)


async def dropped_connections(case: Case) -> None:
    case.faults(drop_every=3)


async def unauthorized_mid_run(case: Case) -> None:
    case.faults(latency_ms=150)
    await case.mid_run()
    case.district.authorized = False


async def token_rotated_mid_run(case: Case) -> None:
    case.faults(latency_ms=150)
    await case.mid_run()
    case.district.rotate_token()


async def backend_terminated_mid_fetch(case: Case) -> None:
    case.faults(latency_ms=40)
    await case.mid_run()
    await case.terminate_backends()


async def backend_terminated_mid_apply(case: Case) -> None:
    original = merge._merge_links
    killed = False

    async def merge_links(connection: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        nonlocal killed
        if not killed:
            killed = True
            await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return await original(connection, *args, **kwargs)

    case.monkeypatch.setattr(merge, "_merge_links", merge_links)


async def postgres_restarted(case: Case) -> None:
    assert case.pg_proxy is not None
    case.faults(latency_ms=40)
    await case.mid_run()
    case.pg_proxy.refuse(2.0)
    case.pg_proxy.cut()


async def disk_full_on_copy(case: Case) -> None:
    original = Staging.copy
    calls = 0

    async def copy(self: Staging, connection: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise asyncpg.exceptions.DiskFullError(
                'could not extend file "base/16384/16385": No space left on device'
            )
        return await original(self, connection, *args, **kwargs)

    case.monkeypatch.setattr(Staging, "copy", copy)


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Inject
    # What a failed run's error must say.
    cause: str
    through_pg_proxy: bool = False


FAULTS = (
    Fault("Clever 429 storm (every 2nd request)", storm_of_429, r"429|rate"),
    Fault("Clever 5xx bursts (2 in every 5)", burst_of_5xx, r"50[023]|server error"),
    Fault("latency beyond the client timeout", latency_beyond_timeout, r"timed out|timeout"),
    Fault("truncated JSON (every 3rd body)", truncated_json, r"JSON|truncat|undecodable"),
    Fault("dropped connections (every 3rd)", dropped_connections, r"connection|disconnect"),
    Fault("401 mid-run", unauthorized_mid_run, r"401|token|unauthori"),
    Fault("token rotated mid-run", token_rotated_mid_run, r"401|token|unauthori"),
    Fault("Postgres backend terminated mid-fetch", backend_terminated_mid_fetch, r"database"),
    Fault("Postgres backend terminated mid-apply", backend_terminated_mid_apply, r"database"),
    Fault("Postgres restarted", postgres_restarted, r"database", through_pg_proxy=True),
    Fault("disk full (a failing COPY)", disk_full_on_copy, r"No space left on device|DiskFull"),
)


def _mirror_state(found: dict[str, str], world: World, mode: RunMode) -> str:
    if found == world.before:
        return "before"
    if found == world.golden[mode]:
        return "golden"
    differing = sorted(t for t in found if found[t] not in (world.before[t], world.golden[mode][t]))
    raise AssertionError(f"the mirror is neither before nor golden: {differing or 'a mix'}")


@pytest.mark.parametrize("mode", list(RunMode), ids=str)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_a_fault_leaves_the_mirror_before_or_golden_and_the_next_run_recovers(
    world: World,
    settings: Settings,
    fault: Fault,
    mode: RunMode,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    district = world.sandbox.districts[0]
    async with cloned_database(world.server_url, world.base) as url:
        pg_proxy = None
        pool_url = url
        if fault.through_pg_proxy:
            target = urlsplit(url)
            pg_proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 5432)
            pool_url = _through(url, await pg_proxy.start())
        configured = _settings(settings, world.sandbox, clever_url=world.clever_url, url=pool_url)
        try:
            async with mirror_pool(pool_url) as pool:
                case = Case(world, _deps(configured, pool), pool, url, mode, monkeypatch, pg_proxy)
                started = time.monotonic()
                run = asyncio.create_task(_sync(case.deps, district.id, mode))
                await fault.inject(case)
                outcome = await asyncio.wait_for(run, timeout=120)
                seconds = time.monotonic() - started
        finally:
            world.sandbox.state.set_faults(FaultConfig())
            world.sandbox.districts[0].authorized = True
            world.clever_proxy.latency = 0.0
            monkeypatch.undo()
            if pg_proxy is not None:
                await pg_proxy.stop()

        async with mirror_pool(url) as pool:
            state = _mirror_state(await fingerprint(pool), world, mode)
            if outcome.status is RunStatus.FAILED:
                assert outcome.error and re.search(fault.cause, outcome.error, re.I), outcome.error
            else:
                assert outcome.status is RunStatus.SUCCEEDED, outcome
                assert state == "golden"
            recovery = await _sync(_recovery(configured, url, pool), district.id, mode)
            assert recovery.status is RunStatus.SUCCEEDED, recovery.error
            assert await fingerprint(pool) == world.golden[mode]
            # What a run could not clean up or record (Postgres unreachable), this one did.
            assert await running_runs(pool) == 0
            assert await leftover_staging(pool) == 0
    RESULTS.append(
        {
            "fault": fault.name,
            "mode": mode.value,
            "status": outcome.status.value,
            "error": (outcome.error or "")[:90].replace("|", "/"),
            "mirror": state,
            "next run": recovery.status.value,
            "seconds": f"{seconds:.1f}",
        }
    )


def _recovery(configured: Settings, url: str, pool: asyncpg.Pool) -> SyncDeps:
    """The next run's deps: straight to Postgres, no fault left."""
    return _deps(configured.model_copy(update={"database_url": url}), pool)


@pytest.mark.parametrize("mode", list(RunMode), ids=str)
async def test_redis_restarted_while_a_worker_runs(
    world: World, settings: Settings, mode: RunMode, tmp_path: Path, redis_url: str
) -> None:
    """A worker whose Redis goes away mid-run finishes the run (the sync needs only
    Postgres and Clever), then takes the next job once Redis is back."""
    district = world.sandbox.districts[0]
    target = urlsplit(redis_url)
    redis_proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxied_redis = urlunsplit(target._replace(netloc=f"127.0.0.1:{await redis_proxy.start()}"))
    async with cloned_database(world.server_url, world.base) as url, mirror_pool(url) as pool:
        configured = _settings(settings, world.sandbox, clever_url=world.clever_url, url=url)
        worker_settings = configured.model_copy(update={"redis_url": proxied_redis})
        workers = Workers(worker_settings, tmp_path)
        async with arq_queue(settings) as queue:
            try:
                workers.start(
                    sandbox=world.sandbox,
                    district=district,
                    extra_env={
                        "CLEVER_PAGE_SIZE": "10",
                        "CLEVER_OAUTH_BASE_URL": world.sandbox.base_url,
                        "SYNC_EVENTS_INTERVAL_SECONDS": "86400",
                    },
                )
                world.sandbox.state.set_faults(FaultConfig(latency_ms=40))
                first = await request_sync(
                    queue, pool, district.id, mode=mode, trigger=RunTrigger.API
                )
                case = Case(world, _deps(configured, pool), pool, url, mode, pytest.MonkeyPatch())
                await case.mid_run()
                redis_proxy.refuse(3.0)
                redis_proxy.cut()
                ended = await _final(pool, first.run_id, workers)
                world.sandbox.state.set_faults(FaultConfig())
                assert ended == "succeeded", workers.logs()
                assert await fingerprint(pool) == world.golden[mode]

                await asyncio.sleep(3.0)  # Redis is back
                second = await request_sync(
                    queue, pool, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.API
                )
                assert await _final(pool, second.run_id, workers) == "succeeded", workers.logs()
                assert await running_runs(pool) == 0
            finally:
                world.sandbox.state.set_faults(FaultConfig())
                workers.stop_all()
                await forget_jobs(queue, [district.id])
                await redis_proxy.stop()
    RESULTS.append(
        {
            "fault": "Redis restarted while a worker runs",
            "mode": mode.value,
            "status": ended,
            "error": "",
            "mirror": "golden",
            "next run": "succeeded (the worker took the next job)",
            "seconds": "",
        }
    )


async def _final(pool: asyncpg.Pool, run_id: uuid.UUID, workers: Workers) -> str:
    deadline = time.monotonic() + 90
    while True:
        status: str = await pool.fetchval("SELECT status FROM sync_runs WHERE id = $1", run_id)
        if status not in ("queued", "running"):
            return status
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.1)
