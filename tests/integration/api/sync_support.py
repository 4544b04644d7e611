"""Helpers for the sync, webhook and data-warning API tests.

Those tests queue runs and jobs for the package's districts; `restored_queue` removes what a
test added (runs, arq job keys, webhook deliveries), so the package's other tests see the
mirror as the package fixtures left it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import Job, JobDef

from app.api.problems import PROBLEM_CONTENT_TYPE
from app.mirror.merge import LIVE_TABLES
from app.settings import Settings
from app.sync.queue import QUEUE_NAME, create_queue, deserialize_job, sync_job_id
from app.sync.service import SyncDeps
from workers.jobs import FUNCTIONS

Json = dict[str, Any]

DELIVERY_KEYS = "roster:webhook:delivery:*"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int) -> Json:
    """The problem document of an answer that must be an error with `status`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE, response.headers
    problem: Json = response.json()
    assert problem["status"] == status
    assert problem["title"]
    return problem


@asynccontextmanager
async def arq_queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    """An arq client on the test Redis, in the worker's format."""
    queue = await create_queue(settings)
    try:
        yield queue
    finally:
        await queue.aclose()


async def forget_jobs(queue: ArqRedis, district_ids: Iterable[str]) -> None:
    """Remove the districts' arq jobs, as a worker finishing them would, and any other job
    left in the queue (a cron job a stopped worker queued and never ran)."""
    queued = [job_id.decode() for job_id in await queue.zrange(QUEUE_NAME, 0, -1)]
    for job_id in {*queued, *(sync_job_id(district_id) for district_id in district_ids)}:
        await queue.zrem(QUEUE_NAME, job_id)
        await queue.delete(
            *(
                prefix + job_id
                for prefix in (
                    job_key_prefix,
                    in_progress_key_prefix,
                    retry_key_prefix,
                    result_key_prefix,
                )
            )
        )


async def queued_job(queue: ArqRedis, district_id: str) -> JobDef | None:
    """The district's job waiting in the queue, if any."""
    job = Job(
        sync_job_id(district_id), queue, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    return await job.info()


async def run_queued_job(queue: ArqRedis, deps: SyncDeps, district_id: str) -> Any:
    """Do what a worker does with the district's queued job: run its function (the one the
    worker registers under the job's name) with a worker's context, then drop the job."""
    definition = await queued_job(queue, district_id)
    assert definition is not None, f"no job queued for district {district_id}"
    functions = {function.name: function for function in FUNCTIONS if hasattr(function, "name")}
    function = functions[definition.function]
    ctx = {"redis": queue, "sync": deps, "job_id": sync_job_id(district_id), "job_try": 1}
    try:
        return await function.coroutine(ctx, *definition.args, **definition.kwargs)
    finally:
        await forget_jobs(queue, [district_id])


async def run_ids(pool: asyncpg.Pool) -> set[uuid.UUID]:
    return {row["id"] for row in await pool.fetch("SELECT id FROM sync_runs")}


@asynccontextmanager
async def restored_queue(
    pool: asyncpg.Pool, queue: ArqRedis, district_ids: Iterable[str]
) -> AsyncIterator[None]:
    """Runs recorded, jobs queued and webhook deliveries remembered in the block are
    removed after it."""
    districts = list(district_ids)
    before = await run_ids(pool)
    await forget_jobs(queue, districts)
    try:
        yield
    finally:
        await forget_jobs(queue, districts)
        async for key in queue.scan_iter(match=DELIVERY_KEYS):
            await queue.delete(key)
        await pool.execute("DELETE FROM sync_runs WHERE NOT (id = ANY($1::uuid[]))", list(before))


async def remove_district(pool: asyncpg.Pool, district_id: str) -> None:
    """Delete everything the mirror holds of a district a test synced for itself."""
    runs = await pool.fetch("SELECT id FROM sync_runs WHERE district_id = $1", district_id)
    prefixes = [f"r{row['id'].hex}_" for row in runs]
    for row in await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'roster_staging'"
    ):
        if row["tablename"].startswith(tuple(prefixes)):
            await pool.execute(f'DROP TABLE roster_staging."{row["tablename"]}"')
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "DELETE FROM group_changes WHERE group_id IN"
            " (SELECT id FROM groups WHERE district_id = $1)",
            district_id,
        )
        await connection.execute(
            "DELETE FROM group_members WHERE group_id IN"
            " (SELECT id FROM groups WHERE district_id = $1)",
            district_id,
        )
        local = ("person_links", "people", "groups", "overrides", "changes")
        for table in (*local, *reversed(LIVE_TABLES), "district_sync_state", "sync_runs"):
            column = "id" if table == "districts" else "district_id"
            await connection.execute(f"DELETE FROM {table} WHERE {column} = $1", district_id)
