"""Sync endpoints: triggering syncs, the runs they record, and deciding held runs.

Triggers go through the real queue (Postgres and the test Redis); no worker runs here, so a
queued job waits until a test runs it the way a worker would (`run_queued_job`).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Retry

from app.api.keys import Scope, create_key
from app.api.pagination import encode_cursor
from app.api.sync_schemas import SyncRun
from app.settings import Settings
from app.sync.locks import district_lock
from app.sync.queue import (
    IN_PROGRESS_TTL_MS,
    INTERRUPTED,
    JOB_START_GRACE_MS,
    QUEUE_NAME,
    reap_dead_runs,
    sync_job_id,
)
from app.sync.runs import RunStatus
from app.sync.service import SyncDeps
from sandbox.district import SandboxDistrict
from sandbox.server import SandboxConfig, run_in_thread
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.sync_support import (
    Json,
    arq_queue,
    assert_problem,
    bearer,
    forget_jobs,
    queued_job,
    remove_district,
    restored_queue,
    run_ids,
    run_queued_job,
)
from tests.integration.sync_sandbox.support import (
    run_row,
    sandbox_settings,
    snapshot_rows,
    staging_tables,
    sync_deps,
    sync_ok,
    sync_once,
)
from tests.support.app import app_client
from workers.jobs import apply_held_run

_seeds = itertools.count(3301)


@pytest.fixture(scope="module")
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    async with arq_queue(settings) as queue:
        yield queue


@pytest.fixture(autouse=True)
async def _restored(
    api_pool: asyncpg.Pool, queue: ArqRedis, mirrored: Mirrored
) -> AsyncIterator[None]:
    async with restored_queue(api_pool, queue, [mirrored.s.id, mirrored.other.id]):
        yield


@pytest.fixture(scope="module")
async def sync_other(api_pool: asyncpg.Pool, mirrored: Mirrored) -> str:
    """A `sync:write` + `roster:read` key limited to the tiny district."""
    async with api_pool.acquire() as connection:
        created = await create_key(
            connection,
            name="sync other",
            scopes=[Scope.SYNC_WRITE, Scope.READ],
            district_ids=[mirrored.other.id],
        )
    return created.secret


async def _trigger(
    api: httpx.AsyncClient, key: str | None, district_id: str, mode: str = "full"
) -> httpx.Response:
    headers = bearer(key) if key is not None else {}
    return await api.post(
        "/v1/sync", json={"district_id": district_id, "mode": mode}, headers=headers
    )


def _run(response: httpx.Response, status: int) -> Json:
    assert response.status_code == status, (response.status_code, response.text)
    body: Json = response.json()
    assert set(body) == set(SyncRun.model_fields)  # exactly the documented fields
    return body


async def _get_run(api: httpx.AsyncClient, key: str, run_id: str | uuid.UUID) -> Json:
    return _run(await api.get(f"/v1/sync/runs/{run_id}", headers=bearer(key)), 200)


# --- POST /v1/sync ------------------------------------------------------------------------


async def test_a_trigger_queues_a_run_and_later_ones_join_it(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    district_id = mirrored.s.id
    first = _run(await _trigger(api, keys.sync, district_id), 202)
    assert (first["district_id"], first["mode"], first["trigger"]) == (district_id, "full", "api")
    assert first["status"] == "queued"
    assert first["started_at"] is None and first["finished_at"] is None

    again = _run(await _trigger(api, keys.admin, district_id), 200)
    assert again["id"] == first["id"]
    job = await queued_job(queue, district_id)
    assert job is not None
    assert job.function == "sync_district"
    assert job.kwargs == {
        "district_id": district_id,
        "mode": "full",
        "trigger": "api",
        "run_id": first["id"],
    }
    row = await run_row(api_pool, uuid.UUID(first["id"]))
    assert (row["status"], row["trigger"]) == ("queued", "api")

    # Another district has its own run.
    other = _run(await _trigger(api, keys.sync, mirrored.other.id), 202)
    assert other["id"] != first["id"]


async def test_fifty_concurrent_triggers_record_one_run_and_queue_one_job(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    district_id = mirrored.s.id
    before = await run_ids(api_pool)

    responses = await asyncio.gather(*(_trigger(api, keys.sync, district_id) for _ in range(50)))

    assert sorted(response.status_code for response in responses) == [200] * 49 + [202]
    answered = {response.json()["id"] for response in responses}
    assert len(answered) == 1
    recorded = await run_ids(api_pool) - before
    assert {str(run_id) for run_id in recorded} == answered
    assert await queue.zrange(QUEUE_NAME, 0, -1) == [sync_job_id(district_id).encode()]
    job = await queued_job(queue, district_id)
    assert job is not None and job.kwargs["run_id"] in answered


async def test_an_unknown_mode_is_refused_naming_the_modes(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    before = await run_ids(api_pool)
    problem = assert_problem(await _trigger(api, keys.sync, mirrored.s.id, "partial"), 422)
    (error,) = problem["errors"]
    assert error["loc"] == ["body", "mode"]
    assert "'full'" in error["msg"] and "'incremental'" in error["msg"]
    assert await run_ids(api_pool) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"district_id": "has spaces"},
        {"district_id": "x" * 65},
        {"district_id": "d1", "mode": "weekly"},
        {"district_id": "d1", "extra": 1},
        {"district_id": 5},
        [],
    ],
)
async def test_malformed_bodies_are_422(api: httpx.AsyncClient, keys: Keys, body: Any) -> None:
    response = await api.post("/v1/sync", json=body, headers=bearer(keys.sync))
    assert assert_problem(response, 422)["errors"]


async def test_trigger_auth(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, sync_other: str, api_pool: asyncpg.Pool
) -> None:
    before = await run_ids(api_pool)
    s = mirrored.s.id
    assert_problem(await _trigger(api, None, s), 401)
    assert_problem(await _trigger(api, "rk_not-a-key", s), 401)
    assert_problem(await _trigger(api, keys.revoked, s), 401)
    assert_problem(await _trigger(api, keys.read, s), 403)
    assert_problem(await _trigger(api, keys.sensitive, s), 403)
    problem = assert_problem(await _trigger(api, sync_other, s), 404)
    assert s in problem["detail"]
    assert await run_ids(api_pool) == before
    _run(await _trigger(api, sync_other, mirrored.other.id), 202)


async def test_a_district_nobody_serves_is_404(
    api: httpx.AsyncClient, keys: Keys, api_pool: asyncpg.Pool
) -> None:
    before = await run_ids(api_pool)
    problem = assert_problem(await _trigger(api, keys.admin, "5f0000000000000000000000"), 404)
    assert "5f0000000000000000000000" in problem["detail"]
    assert await run_ids(api_pool) == before


async def test_a_district_never_mirrored_is_queued_when_a_clever_token_serves_it(
    api_settings: Settings, keys: Keys, api_pool: asyncpg.Pool, queue: ArqRedis
) -> None:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=next(_seeds))) as sandbox:
        district = sandbox.districts[0]
        configured = sandbox_settings(api_settings, sandbox=sandbox, district=district)
        assert await api_pool.fetchval("SELECT 1 FROM districts WHERE id = $1", district.id) is None
        try:
            async with app_client(configured) as api:
                run = _run(await _trigger(api, keys.sync, district.id), 202)
                assert run["district_id"] == district.id
                assert_problem(await _trigger(api, keys.sync, "5f0000000000000000000000"), 404)
        finally:
            await forget_jobs(queue, [district.id])
            await remove_district(api_pool, district.id)


# --- runs nothing will finish do not block a district -------------------------------------


async def test_a_run_whose_job_was_lost_is_failed_and_a_new_one_queued(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis
) -> None:
    district_id = mirrored.s.id
    lost = _run(await _trigger(api, keys.sync, district_id), 202)
    await forget_jobs(queue, [district_id])  # as when Redis is emptied

    fresh = _run(await _trigger(api, keys.sync, district_id), 202)
    assert fresh["id"] != lost["id"]
    failed = await _get_run(api, keys.read, lost["id"])
    assert failed["status"] == "failed" and failed["finished_at"] is not None
    assert "lost" in failed["error"]
    job = await queued_job(queue, district_id)
    assert job is not None and job.kwargs["run_id"] == fresh["id"]


async def test_a_run_whose_worker_died_is_failed_and_its_job_forgotten(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    district_id = mirrored.s.id
    dead = _run(await _trigger(api, keys.sync, district_id), 202)
    # What a worker killed mid-sync leaves: its run `running`, arq's in-progress mark, and
    # no district lock (it died with the worker's connection).
    await api_pool.execute(
        "UPDATE sync_runs SET status = 'running', started_at = now() WHERE id = $1",
        uuid.UUID(dead["id"]),
    )
    await queue.set(in_progress_key_prefix + sync_job_id(district_id), b"1")

    fresh = _run(await _trigger(api, keys.sync, district_id), 202)
    assert fresh["id"] != dead["id"]
    interrupted = await _get_run(api, keys.read, dead["id"])
    assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
    assert not await queue.exists(in_progress_key_prefix + sync_job_id(district_id))
    job = await queued_job(queue, district_id)
    assert job is not None and job.kwargs["run_id"] == fresh["id"]


async def test_a_job_a_worker_just_started_is_joined_before_it_takes_the_lock(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    """Between arq starting a job and the job taking the district's lock, the run is queued,
    in progress and unlocked: alive, not abandoned (triggers used to fail it as lost, queue
    a second run and start the job twice)."""
    district_id = mirrored.s.id
    first = _run(await _trigger(api, keys.sync, district_id), 202)
    # What arq does when a worker picks the job up.
    await queue.psetex(in_progress_key_prefix + sync_job_id(district_id), IN_PROGRESS_TTL_MS, b"1")
    for _ in range(5):
        joined = _run(await _trigger(api, keys.sync, district_id), 200)
        assert (joined["id"], joined["status"]) == (first["id"], "queued")
    assert await queue.exists(in_progress_key_prefix + sync_job_id(district_id))

    # The same mark a minute later, still without the lock: the worker died starting it.
    await queue.psetex(
        in_progress_key_prefix + sync_job_id(district_id),
        IN_PROGRESS_TTL_MS - JOB_START_GRACE_MS - 1000,
        b"1",
    )
    fresh = _run(await _trigger(api, keys.sync, district_id), 202)
    assert fresh["id"] != first["id"]
    lost = await _get_run(api, keys.read, first["id"])
    assert lost["status"] == "failed" and lost["error"].startswith("lost")


async def test_a_running_sync_holding_the_district_lock_is_joined(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    district_id = mirrored.s.id
    running = _run(await _trigger(api, keys.sync, district_id), 202)
    await api_pool.execute(
        "UPDATE sync_runs SET status = 'running', started_at = now() WHERE id = $1",
        uuid.UUID(running["id"]),
    )
    await queue.set(in_progress_key_prefix + sync_job_id(district_id), b"1")
    async with district_lock(api_pool, district_id) as acquired:
        assert acquired
        joined = _run(await _trigger(api, keys.sync, district_id), 200)
        assert joined["id"] == running["id"] and joined["status"] == "running"


async def test_the_reaper_fails_a_dead_run_and_frees_its_district_but_spares_a_live_one(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    dead_district, live_district = mirrored.s.id, mirrored.other.id
    dead = uuid.UUID(_run(await _trigger(api, keys.sync, dead_district), 202)["id"])
    live = uuid.UUID(_run(await _trigger(api, keys.sync, live_district), 202)["id"])
    await api_pool.execute(
        "UPDATE sync_runs SET status = 'running', started_at = now() WHERE id = ANY($1)",
        [dead, live],
    )
    # A worker took both jobs; the one syncing the first district was killed.
    for district_id in (dead_district, live_district):
        await queue.set(in_progress_key_prefix + sync_job_id(district_id), b"1")
    async with district_lock(api_pool, live_district) as acquired:
        assert acquired
        assert await reap_dead_runs(queue, api_pool) == [dead]
        assert await reap_dead_runs(queue, api_pool) == []
    reaped = await run_row(api_pool, dead)
    assert (reaped["status"], reaped["error"]) == ("failed", INTERRUPTED)
    assert (await run_row(api_pool, live))["status"] == "running"
    assert await queued_job(queue, dead_district) is None
    assert not await queue.exists(in_progress_key_prefix + sync_job_id(dead_district))
    assert await queue.exists(in_progress_key_prefix + sync_job_id(live_district))
    # The district is free: a trigger queues a new run at once.
    fresh = _run(await _trigger(api, keys.sync, dead_district), 202)
    assert fresh["id"] != str(dead)


async def test_the_reaper_fails_a_queued_run_whose_job_is_gone(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    """arq gave up on the job after its tries (or Redis was emptied): the run must not wait
    for a trigger to be found out."""
    district_id = mirrored.s.id
    orphan = uuid.UUID(_run(await _trigger(api, keys.sync, district_id), 202)["id"])
    await forget_jobs(queue, [district_id])
    await reap_dead_runs(queue, api_pool)
    lost = await run_row(api_pool, orphan)
    assert lost["status"] == "failed" and lost["error"].startswith("lost"), lost["error"]


async def test_a_roster_sync_run_starting_in_another_process_is_joined_until_it_is_stale(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    district_id = mirrored.s.id
    cli_run = uuid.uuid4()
    # `roster sync` records its run, then looks up the district's token before locking.
    await api_pool.execute(
        "INSERT INTO sync_runs (id, district_id, mode, trigger, status)"
        " VALUES ($1, $2, 'full', 'cli', 'queued')",
        cli_run,
        district_id,
    )
    joined = _run(await _trigger(api, keys.sync, district_id), 200)
    assert joined["id"] == str(cli_run)

    await api_pool.execute(
        "UPDATE sync_runs SET created_at = now() - interval '1 hour' WHERE id = $1", cli_run
    )
    fresh = _run(await _trigger(api, keys.sync, district_id), 202)
    assert fresh["id"] != str(cli_run)
    assert (await run_row(api_pool, cli_run))["status"] == "failed"


# --- GET /v1/sync/runs ----------------------------------------------------------------------


async def _walk(api: httpx.AsyncClient, key: str, limit: int, **params: str) -> list[str]:
    """Every run id the list returns, following `next_cursor` to the end."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(200):
        query = {**params, "limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/v1/sync/runs", params=query, headers=bearer(key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        seen.extend(_run_ids(page["data"]))
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


def _run_ids(runs: list[Json]) -> list[str]:
    for run in runs:
        assert set(run) == set(SyncRun.model_fields)
    return [run["id"] for run in runs]


async def test_runs_list_walks_every_run_once_newest_first_with_filters(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    s, other = mirrored.s.id, mirrored.other.id
    statuses = ("succeeded", "failed", "coalesced", "rejected")
    start = datetime(2024, 9, 1, tzinfo=UTC)
    # Pairs of runs share a creation time, so the order's tie-break is exercised too.
    await api_pool.executemany(
        "INSERT INTO sync_runs (id, district_id, mode, trigger, status, created_at, idle)"
        " VALUES ($1, $2, 'incremental', 'schedule', $3, $4, $5)",
        [
            (
                uuid.uuid4(),
                s if i % 3 else other,
                statuses[i % 4],
                start + timedelta(hours=i // 2),
                i % 5 == 0,  # idle polls
            )
            for i in range(41)
        ],
    )
    rows = await api_pool.fetch("SELECT id, district_id, status, created_at, idle FROM sync_runs")

    def newest_first(*, include_idle: bool = False, **where: str) -> list[str]:
        chosen = [
            r
            for r in rows
            if all(r[column] == value for column, value in where.items())
            and (include_idle or not r["idle"])
        ]
        chosen.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [str(r["id"]) for r in chosen]

    assert len(newest_first(district_id=s)) > 20 and newest_first(district_id=other)
    for key, params, expected in (
        (keys.read, {}, newest_first()),
        (keys.read, {"district_id": s}, newest_first(district_id=s)),
        (keys.read, {"include_idle": "true"}, newest_first(include_idle=True)),
        (
            keys.read_s,
            {"include_idle": "true", "status": "failed"},
            newest_first(include_idle=True, district_id=s, status="failed"),
        ),
        (keys.read, {"status": "failed"}, newest_first(status="failed")),
        (
            keys.read,
            {"district_id": other, "status": "coalesced"},
            newest_first(district_id=other, status="coalesced"),
        ),
        (keys.read_s, {}, newest_first(district_id=s)),
        (keys.read_s, {"district_id": other}, []),
        (
            keys.read_other,
            {"status": "rejected"},
            newest_first(district_id=other, status="rejected"),
        ),
    ):
        for limit in (7, 1000):
            assert await _walk(api, key, limit, **params) == expected, (params, limit)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"status": "paused"},
        {"include_idle": "maybe"},
        {"district_id": "bad id"},
        {"cursor": "not-a-cursor"},
        # Cursors of the API's format that do not hold a run's position.
        {"cursor": encode_cursor("123")},
        {"cursor": encode_cursor("2024-01-01T00:00:00+00:00/not-a-uuid")},
        {"cursor": encode_cursor(f"2024-01-01T00:00:00/{uuid.UUID(int=1)}")},  # no offset
    ],
)
async def test_runs_list_refuses_bad_parameters(
    api: httpx.AsyncClient, keys: Keys, params: dict[str, str]
) -> None:
    response = await api.get("/v1/sync/runs", params=params, headers=bearer(keys.read))
    assert_problem(response, 422)


async def test_a_run_is_shown_to_keys_that_see_its_district(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    row = await api_pool.fetchrow(
        "SELECT * FROM sync_runs WHERE district_id = $1 AND status = 'succeeded'"
        " ORDER BY created_at LIMIT 1",
        mirrored.s.id,
    )
    assert row is not None
    run = await _get_run(api, keys.read_s, row["id"])
    assert run["status"] == "succeeded" and run["trigger"] == "cli"
    assert run["counts"] == row["counts"] and run["counts"]["users"]["created"] > 0
    assert run["progress"] == row["progress"]
    assert run["clever_requests"] == row["clever_requests"] > 0
    assert run["warnings_count"] == row["warnings_count"]
    assert datetime.fromisoformat(run["finished_at"]) == row["finished_at"]

    assert_problem(
        await api.get(f"/v1/sync/runs/{row['id']}", headers=bearer(keys.read_other)), 404
    )
    assert_problem(await api.get(f"/v1/sync/runs/{uuid.uuid4()}", headers=bearer(keys.read)), 404)
    assert_problem(await api.get("/v1/sync/runs/not-a-uuid", headers=bearer(keys.read)), 422)
    assert_problem(await api.get(f"/v1/sync/runs/{row['id']}"), 401)
    assert_problem(await api.get(f"/v1/sync/runs/{row['id']}", headers=bearer(keys.sync)), 403)
    assert_problem(await api.get("/v1/sync/runs", headers=bearer(keys.sync)), 403)
    assert_problem(await api.get("/v1/sync/runs"), 401)


# --- held runs: approve and reject ----------------------------------------------------------


@dataclass(frozen=True)
class HeldRun:
    district: SandboxDistrict
    deps: SyncDeps
    run_id: uuid.UUID
    unshared: int


@pytest.fixture
async def held(
    api_settings: Settings, api_pool: asyncpg.Pool, queue: ArqRedis
) -> AsyncIterator[HeldRun]:
    """A tiny district of the test's own, whose second sync the mass-change guard held."""
    with run_in_thread(SandboxConfig.build(size="tiny", seed=next(_seeds))) as sandbox:
        district = sandbox.districts[0]
        configured = sandbox_settings(api_settings, sandbox=sandbox, district=district)
        deps = sync_deps(configured, pool=api_pool)
        try:
            await sync_ok(deps, district=district)
            unshared = district.unshare("users", 0.8, role="student")
            outcome = await sync_once(deps, district=district)
            assert outcome.status is RunStatus.HELD, outcome.error
            yield HeldRun(district, deps, outcome.run_id, unshared)
        finally:
            await forget_jobs(queue, [district.id])
            await remove_district(api_pool, district.id)


async def _inactive_users(pool: asyncpg.Pool, district_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NOT NULL",
        district_id,
    )
    return count


async def test_an_approved_run_is_applied_by_the_worker_job(
    api: httpx.AsyncClient, keys: Keys, held: HeldRun, queue: ArqRedis, api_pool: asyncpg.Pool
) -> None:
    path = f"/v1/sync/runs/{held.run_id}/approve"
    district_id = held.district.id
    assert await _inactive_users(api_pool, district_id) == 0

    approved = _run(await api.post(path, headers=bearer(keys.sync)), 202)
    assert approved["status"] == "held"  # until the worker has applied it
    assert approved["decided_by"] == "test sync:write" and approved["decided_at"] is not None
    assert approved["held_reason"] and f"{held.unshared} of" in approved["held_reason"]
    # Approving again while the job waits is harmless: still one job.
    _run(await api.post(path, headers=bearer(keys.admin)), 202)
    assert await queue.zrange(QUEUE_NAME, 0, -1) == [sync_job_id(district_id).encode()]
    job = await queued_job(queue, district_id)
    assert job is not None and job.function == "apply_held_run"
    assert job.kwargs["run_id"] == str(held.run_id)
    # The approval owns the district's job id: no sync or rejection can start meanwhile.
    assert_problem(await _trigger(api, keys.sync, district_id), 409)
    assert_problem(
        await api.post(f"/v1/sync/runs/{held.run_id}/reject", headers=bearer(keys.sync)), 409
    )
    assert await _inactive_users(api_pool, district_id) == 0

    result = await run_queued_job(queue, held.deps, district_id)
    assert result == {"run_id": str(held.run_id), "status": "succeeded"}

    run = await _get_run(api, keys.read, held.run_id)
    assert run["status"] == "succeeded" and run["decided_by"] == "test sync:write"
    assert run["finished_at"] is not None
    assert run["counts"]["users"]["deactivated"] == held.unshared
    assert await _inactive_users(api_pool, district_id) == held.unshared
    assert await staging_tables(api_pool, run_id=held.run_id) == []
    problem = assert_problem(await api.post(path, headers=bearer(keys.sync)), 409)
    assert problem["run_status"] == "succeeded"


async def test_a_rejected_run_changes_nothing(
    api: httpx.AsyncClient, keys: Keys, held: HeldRun, api_pool: asyncpg.Pool
) -> None:
    before = await snapshot_rows(api_pool, district_id=held.district.id)
    path = f"/v1/sync/runs/{held.run_id}/reject"

    rejected = _run(await api.post(path, headers=bearer(keys.sync)), 200)
    assert rejected["status"] == "rejected" and rejected["decided_by"] == "test sync:write"
    assert rejected["finished_at"] is not None
    assert await snapshot_rows(api_pool, district_id=held.district.id) == before
    assert await staging_tables(api_pool, run_id=held.run_id) == []

    for decision in ("reject", "approve"):
        problem = assert_problem(
            await api.post(f"/v1/sync/runs/{held.run_id}/{decision}", headers=bearer(keys.sync)),
            409,
        )
        assert problem["run_status"] == "rejected"


async def test_a_held_run_cannot_be_approved_while_a_newer_sync_is_queued(
    api: httpx.AsyncClient, keys: Keys, held: HeldRun, queue: ArqRedis
) -> None:
    newer = _run(await _trigger(api, keys.sync, held.district.id), 202)
    problem = assert_problem(
        await api.post(f"/v1/sync/runs/{held.run_id}/approve", headers=bearer(keys.sync)), 409
    )
    assert "queued or running" in problem["detail"]
    job = await queued_job(queue, held.district.id)
    assert job is not None and job.kwargs["run_id"] == newer["id"]
    assert (await _get_run(api, keys.read, held.run_id))["status"] == "held"


async def test_deciding_runs_needs_sync_write_on_the_district(
    api: httpx.AsyncClient,
    keys: Keys,
    mirrored: Mirrored,
    sync_other: str,
    api_pool: asyncpg.Pool,
) -> None:
    s_run = await api_pool.fetchval(
        "SELECT id FROM sync_runs WHERE district_id = $1 AND status = 'succeeded' LIMIT 1",
        mirrored.s.id,
    )
    for decision in ("approve", "reject"):
        path = f"/v1/sync/runs/{s_run}/{decision}"
        assert_problem(await api.post(path), 401)
        assert_problem(await api.post(path, headers=bearer(keys.revoked)), 401)
        assert_problem(await api.post(path, headers=bearer(keys.read)), 403)
        assert_problem(await api.post(path, headers=bearer(sync_other)), 404)
        unknown = f"/v1/sync/runs/{uuid.uuid4()}/{decision}"
        assert_problem(await api.post(unknown, headers=bearer(keys.sync)), 404)
        malformed = f"/v1/sync/runs/12345/{decision}"
        assert_problem(await api.post(malformed, headers=bearer(keys.sync)), 422)
        problem = assert_problem(await api.post(path, headers=bearer(keys.sync)), 409)
        assert problem["run_status"] == "succeeded"
    assert (await run_row(api_pool, s_run))["decided_by"] is None


async def test_the_apply_job_waits_for_a_sync_holding_the_district_and_skips_decided_runs(
    api: httpx.AsyncClient, keys: Keys, held: HeldRun, api_pool: asyncpg.Pool, queue: ArqRedis
) -> None:
    _run(await api.post(f"/v1/sync/runs/{held.run_id}/approve", headers=bearer(keys.sync)), 202)
    job = await queued_job(queue, held.district.id)
    assert job is not None
    ctx = {"redis": queue, "sync": held.deps, "job_try": 1}

    # `roster sync` in another process holds the district: the job tries again later.
    async with district_lock(api_pool, held.district.id) as acquired:
        assert acquired
        with pytest.raises(Retry):
            await apply_held_run(ctx, **job.kwargs)
    assert (await run_row(api_pool, held.run_id))["status"] == "held"
    assert await _inactive_users(api_pool, held.district.id) == 0

    # Rejected meanwhile (say, from the CLI): nothing to apply, and nothing to retry.
    await api_pool.execute("UPDATE sync_runs SET status = 'rejected' WHERE id = $1", held.run_id)
    result = await apply_held_run(ctx | {"job_try": 2}, **job.kwargs)
    assert result["status"] == "rejected" and "not held" in result["error"]
    assert await _inactive_users(api_pool, held.district.id) == 0
