"""Syncs run by a real `roster worker` process against a sandbox served over loopback HTTP.

The sandbox runs in a thread of this process; the worker reads it like Clever. Killing the
worker with SIGKILL at a known point (held there by a lock this test takes) shows that the
live tables never hold half of a sync and that the next run finishes the job.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import asyncpg
import orjson
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from pydantic import SecretStr

from app.api.keys import Scope, create_key
from app.settings import Settings
from app.sync.queue import request_sync, sync_job_id
from app.sync.runs import RunMode, RunStatus, RunTrigger
from sandbox.district import SandboxDistrict
from sandbox.faults import FaultConfig
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.workers import PAGE_SIZE, Workers
from tests.integration.sync_sandbox.support import (
    assert_mirror_matches_truth,
    run_row,
    sandbox_settings,
    snapshot_rows,
    staging_tables,
    sync_deps,
    sync_ok,
    wait_for,
)
from tests.support.app import app_client
from workers.main import deserialize_job

LATENCY_MS = 150
# The worker's Postgres connections say who they are (app.mirror.pg.create_pool).
WORKER_APPLICATION_NAME = "roster-mirror-sync"
FINAL_STATUSES = {"succeeded", "failed", "held", "rejected", "coalesced"}

_seeds = itertools.count(301)


def _sigkill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    """A tiny district of its own (its ids, and so its arq job id, are the test's alone)."""
    with run_in_thread(SandboxConfig.build(size="tiny", seed=next(_seeds))) as running:
        yield running


async def _enqueue(
    redis: ArqRedis, pool: asyncpg.Pool, *, district: SandboxDistrict
) -> uuid.UUID | None:
    """What `POST /v1/sync` does: record a queued run and queue its job; None if coalesced."""
    request = await request_sync(
        redis, pool, district.id, mode=RunMode.FULL, trigger=RunTrigger.API
    )
    return request.run_id if request.queued else None


async def _wait_until_final(
    pool: asyncpg.Pool, run_id: uuid.UUID, *, workers: Workers
) -> asyncpg.Record:
    async def final() -> asyncpg.Record | None:
        row = await run_row(pool, run_id)
        return row if row["status"] in FINAL_STATUSES else None

    return await wait_for(final, what=f"run {run_id} to finish", diagnostics=workers.logs)


async def _wait_until_fetching(pool: asyncpg.Pool, run_id: uuid.UUID, *, workers: Workers) -> None:
    """Until the run has copied a page of users into its staging tables."""

    async def users_page() -> int | None:
        row = await run_row(pool, run_id)
        assert row["status"] not in FINAL_STATUSES, (row["status"], row["error"])
        pages: int = row["progress"].get("users", {}).get("pages", 0)
        return pages if pages >= 1 else None

    await wait_for(users_page, what="a page of users fetched", diagnostics=workers.logs)
    assert await staging_tables(pool, run_id=run_id)


async def _worker_connections(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = $1",
        WORKER_APPLICATION_NAME,
    )
    return count


async def _wait_until_worker_connections_closed(pool: asyncpg.Pool) -> None:
    """A killed client's backends end (rolling back) once they next talk to it."""

    async def closed() -> bool | None:
        return True if await _worker_connections(pool) == 0 else None

    await wait_for(closed, what="the killed worker's database sessions to end")


def _change(district: SandboxDistrict) -> None:
    """Changes the next sync must apply everywhere: users, sections, terms and courses."""
    truth = district.truth
    district.update(truth.ids("users", "teacher")[0], {"name": {"last": "After-Crash"}})
    section_id = next(s for s in truth.ids("sections") if len(truth.section_student_ids(s)) > 2)
    district.remove_students(section_id, truth.section_student_ids(section_id)[:2])
    district.delete(truth.ids("users", "student")[-1])
    district.roll_over_terms()


async def _recover_in_process(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    sandbox: RunningSandbox,
    killed_run: uuid.UUID,
) -> None:
    """The next run of the district succeeds and cleans up after the killed one."""
    district = sandbox.districts[0]
    sandbox.state.set_faults(FaultConfig())
    deps = sync_deps(sandbox_settings(settings, sandbox=sandbox, district=district), pool=pool)
    await sync_ok(deps, district=district)
    killed = await run_row(pool, killed_run)
    assert killed["status"] == "failed"
    assert "interrupted" in (killed["error"] or "")
    assert killed["finished_at"] is not None
    assert await staging_tables(pool, run_id=killed_run) == []
    assert await staging_tables(pool) == []
    await assert_mirror_matches_truth(pool, district=district)


async def test_worker_syncs_a_district_and_coalesces_triggers(
    sandbox: RunningSandbox, pool: asyncpg.Pool, arq_redis: ArqRedis, workers: Workers
) -> None:
    district = sandbox.districts[0]
    sandbox.state.set_faults(FaultConfig(latency_ms=LATENCY_MS))

    run_id = await _enqueue(arq_redis, pool, district=district)
    assert run_id is not None
    assert await _enqueue(arq_redis, pool, district=district) is None  # queued: coalesced
    workers.start(sandbox=sandbox, district=district)

    async def running() -> bool | None:
        row = await run_row(pool, run_id)
        assert row["status"] not in FINAL_STATUSES, (row["status"], row["error"])
        return True if row["status"] == "running" else None

    await wait_for(running, what="the worker to start the run", diagnostics=workers.logs)
    assert await _enqueue(arq_redis, pool, district=district) is None  # running: coalesced
    assert (await run_row(pool, run_id))["status"] == "running"  # still, so that was mid-run

    run = await _wait_until_final(pool, run_id, workers=workers)
    assert run["status"] == "succeeded", run["error"]
    assert (run["mode"], run["trigger"]) == ("full", "api")
    users = district.truth.counts()["users"]
    assert run["progress"]["users"]["records"] == users
    assert run["progress"]["users"]["pages"] >= users / PAGE_SIZE
    assert run["clever_requests"] >= sum(page["pages"] for page in run["progress"].values())
    await assert_mirror_matches_truth(pool, district=district)

    # A finished run frees the district's job id: the next trigger runs, and writes nothing.
    sandbox.state.set_faults(FaultConfig())
    before = await snapshot_rows(pool, district_id=district.id)
    job = Job(sync_job_id(district.id), arq_redis, _deserializer=deserialize_job)

    async def job_gone() -> bool | None:
        return True if await job.status() is JobStatus.not_found else None

    await wait_for(job_gone, what="the finished job to free its id", diagnostics=workers.logs)
    again = await _enqueue(arq_redis, pool, district=district)
    assert again is not None
    rerun = await _wait_until_final(pool, again, workers=workers)
    assert rerun["status"] == "succeeded", rerun["error"]
    assert await snapshot_rows(pool, district_id=district.id) == before


async def test_sigkill_while_fetching_leaves_the_mirror_as_it_was(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    settings: Settings,
) -> None:
    district = sandbox.districts[0]
    deps = sync_deps(sandbox_settings(settings, sandbox=sandbox, district=district), pool=pool)
    await sync_ok(deps, district=district)
    _change(district)
    before = await snapshot_rows(pool, district_id=district.id)

    sandbox.state.set_faults(FaultConfig(latency_ms=LATENCY_MS))
    worker = workers.start(sandbox=sandbox, district=district)
    run_id = await _enqueue(arq_redis, pool, district=district)
    assert run_id is not None
    await _wait_until_fetching(pool, run_id, workers=workers)

    # Hold the run's row: its next progress report waits, mid-fetch, where it is killed.
    async with pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("SELECT 1 FROM sync_runs WHERE id = $1 FOR UPDATE", run_id)

        async def reporting_progress() -> bool | None:
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = $1 AND wait_event_type = 'Lock'"
                " AND starts_with(query, 'UPDATE sync_runs SET progress')",
                WORKER_APPLICATION_NAME,
            )
            return True if waiting else None

        await wait_for(
            reporting_progress, what="the next progress report", diagnostics=workers.logs
        )
        _sigkill(worker)
    await _wait_until_worker_connections_closed(pool)

    assert await snapshot_rows(pool, district_id=district.id) == before
    assert (await run_row(pool, run_id))["status"] == "running"  # nobody left to say otherwise
    assert await staging_tables(pool, run_id=run_id)
    await _recover_in_process(pool, settings, sandbox=sandbox, killed_run=run_id)


async def test_sigkill_while_applying_leaves_the_mirror_as_it_was(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    settings: Settings,
) -> None:
    district = sandbox.districts[0]
    deps = sync_deps(sandbox_settings(settings, sandbox=sandbox, district=district), pool=pool)
    await sync_ok(deps, district=district)
    _change(district)
    before = await snapshot_rows(pool, district_id=district.id)

    # Lock enrollments: the apply transaction merges users and sections, then waits here.
    async with pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE enrollments IN ACCESS EXCLUSIVE MODE")
        worker = workers.start(sandbox=sandbox, district=district)
        run_id = await _enqueue(arq_redis, pool, district=district)
        assert run_id is not None

        async def waiting_on_enrollments() -> int | None:
            pid: int | None = await pool.fetchval(
                "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE NOT l.granted AND l.relation = 'enrollments'::regclass"
                " AND a.datname = current_database() AND a.application_name = $1",
                WORKER_APPLICATION_NAME,
            )
            return pid

        pid = await wait_for(
            waiting_on_enrollments,
            what="the apply to reach enrollments",
            diagnostics=workers.logs,
        )
        # Tables its open transaction has written to (and so would half-apply if committed).
        written = await pool.fetch(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
            " WHERE l.pid = $1 AND l.granted AND l.mode = 'RowExclusiveLock'",
            pid,
        )
        _sigkill(worker)
    await _wait_until_worker_connections_closed(pool)

    assert await snapshot_rows(pool, district_id=district.id) == before
    assert {"users", "sections"} <= {row["relname"] for row in written}
    assert (await run_row(pool, run_id))["status"] == "running"
    await _recover_in_process(pool, settings, sandbox=sandbox, killed_run=run_id)


async def test_a_new_worker_syncs_a_district_whose_worker_was_killed(
    sandbox: RunningSandbox, pool: asyncpg.Pool, arq_redis: ArqRedis, workers: Workers
) -> None:
    district = sandbox.districts[0]
    sandbox.state.set_faults(FaultConfig(latency_ms=LATENCY_MS))
    worker = workers.start(sandbox=sandbox, district=district)
    killed_run = await _enqueue(arq_redis, pool, district=district)
    assert killed_run is not None
    await _wait_until_fetching(pool, killed_run, workers=workers)
    _sigkill(worker)
    await _wait_until_worker_connections_closed(pool)

    sandbox.state.set_faults(FaultConfig())
    workers.start(sandbox=sandbox, district=district)
    # Either the new trigger is accepted, or it coalesces into the killed job, which a live
    # worker must then run again: some run of the district has to succeed.
    new_run = await _enqueue(arq_redis, pool, district=district)
    runs = [run for run in (killed_run, new_run) if run is not None]

    async def succeeded() -> uuid.UUID | None:
        for run_id in runs:
            if (await run_row(pool, run_id))["status"] == RunStatus.SUCCEEDED:
                return run_id
        return None

    def diagnostics() -> str:
        trigger = "accepted" if new_run is not None else "coalesced into the killed job"
        return f"the new trigger was {trigger}\n{workers.logs()}"

    await wait_for(
        succeeded, what="a sync of the district to succeed", seconds=30, diagnostics=diagnostics
    )
    await assert_mirror_matches_truth(pool, district=district)


async def test_syncs_asked_through_the_api_and_a_signed_webhook_are_run_by_the_worker(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    settings: Settings,
) -> None:
    district = sandbox.districts[0]
    secret = "shared-webhook-secret"
    api_settings = sandbox_settings(settings, sandbox=sandbox, district=district).model_copy(
        update={"sync_webhook_secrets": [SecretStr(secret)], "api_key_cache_seconds": 0.0}
    )
    async with pool.acquire() as connection:
        key = await create_key(connection, name="e2e", scopes=[Scope.READ, Scope.SYNC_WRITE])
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with app_client(api_settings) as api:
        # A district never mirrored, served by a configured token: its first sync.
        asked = await api.post(
            "/v1/sync", json={"district_id": district.id, "mode": "full"}, headers=headers
        )
        assert asked.status_code == 202, asked.text
        run_id = uuid.UUID(asked.json()["id"])
        workers.start(sandbox=sandbox, district=district)
        run = await _wait_until_final(pool, run_id, workers=workers)
        assert run["status"] == "succeeded", run["error"]
        shown = (await api.get(f"/v1/sync/runs/{run_id}", headers=headers)).json()
        assert (shown["status"], shown["trigger"]) == ("succeeded", "api")
        users = await api.get(
            "/v1/users", params={"district_id": district.id, "limit": 1000}, headers=headers
        )
        assert len(users.json()["data"]) == district.truth.counts()["users"]

        # The same through a signed webhook, once the first run has freed the job id.
        job = Job(sync_job_id(district.id), arq_redis, _deserializer=deserialize_job)

        async def job_gone() -> bool | None:
            return True if await job.status() is JobStatus.not_found else None

        await wait_for(job_gone, what="the finished job to free its id", diagnostics=workers.logs)
        body = orjson.dumps({"district_id": district.id, "mode": "full"})
        timestamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        signed = {
            "Content-Type": "application/json",
            "X-Roster-Timestamp": timestamp,
            "X-Roster-Signature": f"v1={digest.hexdigest()}",
        }
        delivered = await api.post("/v1/sync", content=body, headers=signed)
        assert delivered.status_code == 202, delivered.text
        hooked = uuid.UUID(delivered.json()["id"])
        assert hooked != run_id
        replayed = await api.post("/v1/sync", content=body, headers=signed)
        assert (replayed.status_code, replayed.json()["id"]) == (200, str(hooked))
        run = await _wait_until_final(pool, hooked, workers=workers)
        assert (run["status"], run["trigger"]) == ("succeeded", "webhook"), run["error"]
        runs = (
            await api.get("/v1/sync/runs", params={"district_id": district.id}, headers=headers)
        ).json()
        assert [entry["id"] for entry in runs["data"]] == [str(hooked), str(run_id)]
