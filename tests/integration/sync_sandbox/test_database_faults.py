"""Postgres ending a sync's connections mid-run: the run says so, and is run again."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg

from app.settings import Settings, to_asyncpg_url
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.server import RunningSandbox
from tests.integration.sync_sandbox.support import (
    assert_mirror_matches_truth,
    run_row,
    sandbox_settings,
    sync_deps,
    sync_ok,
    wait_for,
)


async def _terminate_backends(database_url: str) -> int:
    """End every other session on the test database, as an administrator would."""
    connection = await asyncpg.connect(to_asyncpg_url(database_url))
    try:
        ended = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return len(ended)


async def _run_progressing(pool: asyncpg.Pool, district_id: str) -> bool | None:
    """True once the district's run has read some of the district (is mid-fetch)."""
    progress = await pool.fetchval(
        "SELECT progress::text FROM sync_runs WHERE district_id = $1 AND status = 'running'",
        district_id,
    )
    return True if progress and ('"users"' in progress or '"events"' in progress) else None


def _deps(
    settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool, page_size: int = 200
) -> SyncDeps:
    district = sandbox.districts[0]
    configured = sandbox_settings(settings, sandbox=sandbox, district=district, page_size=page_size)
    return dataclasses.replace(sync_deps(configured, pool=pool), database_retry_delays=(0.2,))


async def test_connections_terminated_mid_fetch_are_named_and_the_run_retried(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool, database_url: str
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    tiny_sandbox.state.set_faults(dataclasses.replace(tiny_sandbox.state.faults, latency_ms=30))
    task = asyncio.create_task(sync_district(deps, district.id, trigger=RunTrigger.CLI))
    await wait_for(lambda: _run_progressing(mirror_pool, district.id), what="the run mid-fetch")
    assert await _terminate_backends(database_url) > 0
    outcome = await task
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    await assert_mirror_matches_truth(mirror_pool, district=district)


async def test_with_no_retry_left_the_run_fails_naming_the_termination(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool, database_url: str
) -> None:
    district = tiny_sandbox.districts[0]
    deps = dataclasses.replace(
        _deps(settings, tiny_sandbox, mirror_pool, page_size=10), database_retry_delays=()
    )
    await sync_ok(deps, district=district)
    tiny_sandbox.state.set_faults(dataclasses.replace(tiny_sandbox.state.faults, latency_ms=30))
    district.roll_over_terms()
    for mode in (RunMode.FULL, RunMode.INCREMENTAL):
        task = asyncio.create_task(
            sync_district(deps, district.id, mode=mode, trigger=RunTrigger.CLI)
        )
        await wait_for(
            lambda: _run_progressing(mirror_pool, district.id), what=f"the {mode} run mid-way"
        )
        await _terminate_backends(database_url)
        outcome = await task
        assert outcome.status is RunStatus.FAILED, mode
        run = await run_row(mirror_pool, outcome.run_id)
        assert run["status"] == "failed"
        assert run["error"].startswith("database connection lost"), run["error"]
        assert (
            "terminating connection due to administrator command" in run["error"]
            or "the server closed it" in run["error"]
        )
        assert "released back to the pool" not in run["error"]
        assert "underlying connection is closed" not in run["error"]
