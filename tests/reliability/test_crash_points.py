"""Crash consistency: a worker killed (SIGKILL) anywhere in a run leaves nothing half-done.

An `S` district is mirrored into a base database and then changed. For each of 30 seeded
random moments of a full run and 30 of an incremental run, a copy of the base database gets
a real `roster worker` process, which starts the run and is killed at that moment after the
run began. One more run afterwards (in this process, as a restarted worker would run it)
must succeed and leave the mirror exactly as an uninterrupted run does, with no run left
`running` and no staging table left behind. The kills are written to
`build/reliability/crash_points.md`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis

from app.settings import Settings
from app.sync.queue import request_sync
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.conftest import with_database
from tests.e2e.workers import Workers
from tests.integration.api.sync_support import arq_queue, forget_jobs
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps
from tests.reliability.support import (
    cloned_database,
    fingerprint,
    leftover_staging,
    migrated_database,
    mirror_pool,
    running_runs,
    write_report,
)

pytestmark = pytest.mark.reliability

POINTS = int(os.environ.get("CRASH_POINTS", "30"))
SEED = 20261201
PAGE_SIZE = 500
RESULTS: list[dict[str, Any]] = []


@dataclass
class World:
    sandbox: RunningSandbox
    base: str
    server_url: str
    golden: dict[RunMode, dict[str, str]]
    seconds: dict[RunMode, float]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="S", seed=43)) as running:
        yield running


@pytest.fixture(scope="module")
def base_database(server_database_url: str) -> Iterator[str]:
    with migrated_database(server_database_url, "roster_crash_base") as name:
        yield name


def _configured(settings: Settings, sandbox: RunningSandbox, url: str) -> Settings:
    district = sandbox.districts[0]
    return sandbox_settings(
        settings, sandbox=sandbox, district=district, page_size=PAGE_SIZE
    ).model_copy(update={"database_url": url})


def _change(district: SandboxDistrict) -> None:
    """About 5 % of the district changes: names, deletions, new students, moves, terms."""
    truth = district.truth
    students = truth.ids("users", "student")
    sections = truth.ids("sections")
    for student in students[:400]:
        district.update(student, {"name": {"middle": "Crash"}})
    for student in students[400:450]:
        district.delete(student)
    for section in sections[:20]:
        district.update(section, {"name": "Renamed"})
    for _ in range(30):
        district.add_students(sections[25], [district.create("users", role="student")])
    district.roll_over_terms()


async def _run(deps: SyncDeps, district_id: str, mode: RunMode) -> Any:
    return await sync_district(deps, district_id, mode=mode, trigger=RunTrigger.CLI)


@pytest.fixture(scope="module")
async def world(
    sandbox: RunningSandbox, base_database: str, server_database_url: str, settings: Settings
) -> AsyncIterator[World]:
    district = sandbox.districts[0]
    base_url = with_database(server_database_url, base_database)
    async with mirror_pool(base_url) as pool:
        outcome = await _run(
            sync_deps(_configured(settings, sandbox, base_url), pool=pool),
            district.id,
            RunMode.FULL,
        )
        assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    _change(district)
    golden, seconds = {}, {}
    for mode in RunMode:
        async with (
            cloned_database(server_database_url, base_database) as url,
            mirror_pool(url) as pool,
        ):
            started = time.monotonic()
            outcome = await _run(
                sync_deps(_configured(settings, sandbox, url), pool=pool), district.id, mode
            )
            seconds[mode] = time.monotonic() - started
            assert outcome.status is RunStatus.SUCCEEDED, outcome.error
            golden[mode] = await fingerprint(pool)
    yield World(sandbox, base_database, server_database_url, golden, seconds)
    write_report(
        "crash_points",
        RESULTS,
        ["mode", "point", "killed after (s)", "run was", "next run", "mirror", "left running"],
    )


@pytest.fixture
async def queue(settings: Settings, sandbox: RunningSandbox) -> AsyncIterator[ArqRedis]:
    async with arq_queue(settings) as redis:
        try:
            yield redis
        finally:
            await forget_jobs(redis, [district.id for district in sandbox.districts])


async def _status(pool: asyncpg.Pool, run_id: uuid.UUID) -> tuple[str, str]:
    row = await pool.fetchrow(
        "SELECT status, progress::text AS progress FROM sync_runs WHERE id = $1", run_id
    )
    assert row is not None
    return row["status"], row["progress"] or ""


async def _until_sessions_end(pool: asyncpg.Pool) -> None:
    """The killed worker's sessions end (rolling back, releasing the district's lock) once
    Postgres sees their sockets closed."""
    deadline = time.monotonic() + 30
    while await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'roster-mirror-sync'"
    ):
        assert time.monotonic() < deadline, "the killed worker's sessions did not end"
        await asyncio.sleep(0.05)


# The order a full run reads in; its progress names what it has read so far.
_READ_ORDER = ("districts", "schools", "terms", "courses", "users", "sections", "events")


def _reached(progress: str) -> str:
    """What a running run had got to: the last collection it reported reading (after
    `sections`, it is merging)."""
    read = set(json.loads(progress)) if progress else set()
    return next((name for name in reversed(_READ_ORDER) if name in read), "start")


def _moments(mode: RunMode, seconds: float) -> list[float]:
    """Seeded moments within the run (as long as it took uninterrupted, in this process)."""
    rng = random.Random(f"{SEED}-{mode}")
    return sorted(rng.uniform(0.0, seconds) for _ in range(POINTS))


@pytest.mark.parametrize("mode", list(RunMode), ids=str)
async def test_a_worker_killed_at_any_point_leaves_a_state_the_next_run_completes(
    world: World, settings: Settings, queue: ArqRedis, tmp_path: Path, mode: RunMode
) -> None:
    district = world.sandbox.districts[0]
    for point, moment in enumerate(_moments(mode, world.seconds[mode]), start=1):
        async with cloned_database(world.server_url, world.base) as url, mirror_pool(url) as pool:
            configured = _configured(settings, world.sandbox, url)
            workers = Workers(configured, tmp_path / f"{mode}-{point}")
            (tmp_path / f"{mode}-{point}").mkdir()
            worker = workers.start(
                sandbox=world.sandbox,
                district=district,
                extra_env={
                    "CLEVER_PAGE_SIZE": str(PAGE_SIZE),
                    "SYNC_EVENTS_INTERVAL_SECONDS": "86400",
                },
            )
            try:
                request = await request_sync(
                    queue, pool, district.id, mode=mode, trigger=RunTrigger.API
                )
                deadline = time.monotonic() + 60
                while (await _status(pool, request.run_id))[0] == "queued":
                    assert time.monotonic() < deadline, workers.logs()
                    await asyncio.sleep(0.02)
                await asyncio.sleep(moment)
                status, progress = await _status(pool, request.run_id)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            finally:
                workers.stop_all()
            await forget_jobs(queue, [district.id])
            await _until_sessions_end(pool)
            phase = status if status != "running" else f"running ({_reached(progress)})"

            recovery = await _run(sync_deps(configured, pool=pool), district.id, mode)
            assert recovery.status is RunStatus.SUCCEEDED, (point, recovery.error)
            same = await fingerprint(pool) == world.golden[mode]
            left = await running_runs(pool)
            RESULTS.append(
                {
                    "mode": mode.value,
                    "point": point,
                    "killed after (s)": f"{moment:.2f}",
                    "run was": phase,
                    "next run": recovery.status.value,
                    "mirror": "as uninterrupted" if same else "DIFFERENT",
                    "left running": left,
                }
            )
            assert same, f"point {point}: the mirror differs from an uninterrupted run's"
            assert left == 0
            assert await leftover_staging(pool) == 0
