"""Real `roster worker` processes sharing districts, and incremental runs killed mid-way.

Two workers, three districts, triggers from the cron schedule, the API's queue and the CLI
at once: every district synced right, never two runs of one district at the same time, and
a trigger hammering a district shares its one run. A worker SIGKILLed between two batches of
events: a killed run applies nothing, and the next run applies every event once.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from arq.connections import ArqRedis

from app.settings import Settings
from app.sync.queue import request_sync
from app.sync.runs import RunMode, RunTrigger
from sandbox.faults import FaultConfig
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.test_processes import cli_environment
from tests.e2e.test_sync_worker import (
    FINAL_STATUSES,
    _sigkill,
    _wait_until_final,
    _wait_until_worker_connections_closed,
)
from tests.e2e.workers import PAGE_SIZE, ROSTER, Workers
from tests.integration.sync_sandbox.support import (
    assert_mirror_matches_truth,
    run_row,
    sandbox_settings,
    snapshot_rows,
    sync_deps,
    sync_ok,
    wait_for,
)
from tests.integration.sync_sandbox.test_mirror_matches_truth import _change_the_district

_seeds = itertools.count(401)


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    """Three tiny districts of their own."""
    config = SandboxConfig.build(size="tiny", seed=next(_seeds) * 10, districts=3)
    with run_in_thread(config) as running:
        yield running


async def _runs(pool: asyncpg.Pool, district_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM sync_runs WHERE district_id = $1 ORDER BY created_at", district_id
    )
    return rows


def _cli_sync(
    settings: Settings, sandbox: RunningSandbox, district_id: str
) -> subprocess.Popen[bytes]:
    """`roster sync <district>` in a process of its own, as an operator would run it."""
    env = cli_environment(settings, sandbox, page_size=PAGE_SIZE)
    return subprocess.Popen(
        [*ROSTER, "sync", district_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


async def test_two_workers_share_three_districts_triggered_by_cron_api_and_cli(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    settings: Settings,
) -> None:
    first, _, third = sandbox.districts
    sandbox.state.set_faults(FaultConfig(latency_ms=20))
    every_minute = {"SYNC_FULL_CRON": "* * * * *"}
    workers.start(sandbox=sandbox, extra_env=every_minute)
    workers.start(sandbox=sandbox, extra_env=every_minute)

    cli = _cli_sync(settings, sandbox, third.id)
    for district in sandbox.districts:
        await request_sync(arq_redis, pool, district.id, mode=RunMode.FULL, trigger=RunTrigger.API)
    # One district triggered every 15 ms for 1.5 s: all those triggers share runs.
    answers: list[tuple[uuid.UUID, bool]] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        request = await request_sync(
            arq_redis, pool, first.id, mode=RunMode.FULL, trigger=RunTrigger.API
        )
        answers.append((request.run_id, request.queued))
        await asyncio.sleep(0.015)
    output, _ = cli.communicate(timeout=120)
    assert cli.returncode == 0, output.decode(errors="replace")

    async def all_synced_by_the_schedule() -> bool | None:
        for district in sandbox.districts:
            runs = await _runs(pool, district.id)
            if any(run["status"] not in FINAL_STATUSES for run in runs):
                return None
            if not any(run["trigger"] == "schedule" for run in runs):
                return None
        return True

    await wait_for(
        all_synced_by_the_schedule,
        what="a scheduled sync of every district",
        seconds=100,
        diagnostics=workers.logs,
    )

    spans: list[tuple[str, float, float]] = []
    for district in sandbox.districts:
        runs = await _runs(pool, district.id)
        for run in runs:
            if run["trigger"] in ("api", "schedule"):
                # The queue joins triggers to the district's one run: none coalesces or is
                # lost (only `roster sync`, which bypasses the queue, may coalesce).
                assert run["status"] == "succeeded", (run["trigger"], run["status"], run["error"])
        started = sorted(
            (run for run in runs if run["started_at"] is not None), key=lambda r: r["started_at"]
        )
        for earlier, later in itertools.pairwise(started):
            assert later["started_at"] >= earlier["finished_at"], "two runs of one district at once"
        spans += [
            (district.id, run["started_at"].timestamp(), run["finished_at"].timestamp())
            for run in started
        ]
        await assert_mirror_matches_truth(pool, district=district)

    created = [run_id for run_id, queued in answers if queued]
    assert len(answers) > 50
    assert len(set(created)) == len(created)
    # Runs of different districts overlapped in time: the workers ran them in parallel.
    assert any(
        a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a, b in itertools.combinations(spans, 2)
    )
    logs = workers.logs()
    assert "KeyError" not in logs and "Traceback" not in logs, logs


async def _events_progress(pool: asyncpg.Pool, run_id: uuid.UUID, pages: int) -> bool | None:
    row = await run_row(pool, run_id)
    assert row["status"] not in FINAL_STATUSES, (row["status"], row["error"])
    done: int = (row["progress"] or {}).get("events", {}).get("pages", 0)
    return True if done >= pages else None


async def test_a_worker_killed_mid_incremental_applies_nothing_and_the_next_run_all(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    settings: Settings,
) -> None:
    district = sandbox.districts[0]
    deps = sync_deps(sandbox_settings(settings, sandbox=sandbox, district=district), pool=pool)
    await sync_ok(deps, district=district)
    start = district.newest_event_id()
    assert start is not None
    _change_the_district(district)
    for teacher in district.truth.ids("users", "teacher"):
        district.update(teacher, {"name": {"middle": "Batch"}})
    events = district.events.total - (district.event_seq(start) or 0) - 1
    assert events > 10 * PAGE_SIZE
    sandbox.state.set_faults(FaultConfig(latency_ms=40))

    before = await snapshot_rows(pool, district_id=district.id)
    for pages in (1, 4, 7):  # kill after the first batch, then further along
        worker = workers.start(sandbox=sandbox, district=district)
        request = await request_sync(
            arq_redis, pool, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.API
        )
        assert request.queued
        run_id, wanted = request.run_id, pages

        async def applied(run_id: uuid.UUID = run_id, wanted: int = wanted) -> bool | None:
            return await _events_progress(pool, run_id, wanted)

        await wait_for(applied, what=f"{pages} pages of events applied", diagnostics=workers.logs)
        _sigkill(worker)
        await _wait_until_worker_connections_closed(pool)
        cursor = await pool.fetchval(
            "SELECT events_cursor FROM district_sync_state WHERE district_id = $1", district.id
        )
        assert cursor == start, "a killed run moves no cursor"
        assert await snapshot_rows(pool, district_id=district.id) == before

    sandbox.state.set_faults(FaultConfig())
    workers.start(sandbox=sandbox, district=district)
    request = await request_sync(
        arq_redis, pool, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.API
    )

    last = await _wait_until_final(pool, request.run_id, workers=workers)
    assert last["status"] == "succeeded", last["error"]
    runs = [run for run in await _runs(pool, district.id) if run["mode"] == "incremental"]
    assert [run["status"] for run in runs] == ["failed"] * 3 + ["succeeded"]
    assert all("interrupted" in (run["error"] or "") for run in runs[:3])
    # The run that succeeded saw every event after the full sync's cursor, once.
    assert sum((runs[-1]["counts"] or {}).get("events", {}).values()) == events
    await assert_mirror_matches_truth(pool, district=district)
