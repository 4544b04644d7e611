"""Queueing syncs for the worker (arq on Redis): one queued or running sync per district.

The API, the cron schedule and `roster demo` all go through `request_sync`, which records
the run before its job exists (the worker may start it at once) and coalesces a trigger into
the district's pending job.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

import asyncpg
import orjson
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from app.redis import redis_settings
from app.settings import Settings
from app.sync import runs
from app.sync.full import is_district_locked
from app.sync.runs import RunMode, RunStatus, RunTrigger

QUEUE_NAME = "roster:queue"
SYNC_FUNCTION = "sync_district"

# Jobs travel as JSON, not pickle: they carry ids only, and any process may read them.
serialize_job = functools.partial(orjson.dumps, default=repr)
deserialize_job = orjson.loads


def sync_job_id(district_id: str) -> str:
    """arq refuses a second job with the same id while one is queued or running."""
    return f"sync:{district_id}"


async def create_queue(settings: Settings) -> ArqRedis:
    """An arq Redis pool that enqueues onto the worker's queue, in the worker's format."""
    return await create_pool(
        redis_settings(settings),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )


@dataclass(frozen=True)
class SyncRequest:
    run_id: uuid.UUID
    # False when the trigger joined a sync of the district already queued or running.
    queued: bool


async def request_sync(
    redis: ArqRedis,
    pool: asyncpg.Pool,
    district_id: str,
    *,
    mode: RunMode,
    trigger: RunTrigger,
) -> SyncRequest:
    """Record a queued run and queue its job, or coalesce into the district's pending sync.

    A coalesced trigger is recorded as a `coalesced` run; the returned run is the pending
    one when it can be found.
    """
    async with pool.acquire() as connection:
        run_id = await runs.create_run(connection, district_id, mode, trigger)
    if await _enqueue(redis, district_id, mode, trigger, run_id):
        return SyncRequest(run_id, queued=True)
    if await _clear_if_abandoned(redis, pool, district_id) and await _enqueue(
        redis, district_id, mode, trigger, run_id
    ):
        return SyncRequest(run_id, queued=True)
    async with pool.acquire() as connection:
        await runs.finish_run(
            connection,
            run_id,
            RunStatus.COALESCED,
            error="a sync of this district was already queued or running",
        )
        pending = await connection.fetchval(
            "SELECT id FROM sync_runs WHERE district_id = $1 AND status IN ('queued', 'running')"
            " ORDER BY created_at DESC LIMIT 1",
            district_id,
        )
    return SyncRequest(pending or run_id, queued=False)


async def _enqueue(
    redis: ArqRedis, district_id: str, mode: RunMode, trigger: RunTrigger, run_id: uuid.UUID
) -> bool:
    job = await redis.enqueue_job(
        SYNC_FUNCTION,
        district_id,
        mode.value,
        trigger.value,
        str(run_id),
        _job_id=sync_job_id(district_id),
    )
    return job is not None


async def _clear_if_abandoned(redis: ArqRedis, pool: asyncpg.Pool, district_id: str) -> bool:
    """Forget the district's job if arq thinks it runs but nobody holds the district's lock.

    A worker killed mid-job leaves arq's in-progress key for the job's whole timeout; without
    this the district could not be synced again for hours. A job that has just started and
    not yet taken the lock may be run twice; the second run then coalesces on the lock.
    """
    job_id = sync_job_id(district_id)
    if not await redis.exists(in_progress_key_prefix + job_id):
        return False
    async with pool.acquire() as connection:
        if await is_district_locked(connection, district_id):
            return False
    await redis.delete(
        in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id
    )
    await redis.zrem(QUEUE_NAME, job_id)
    return True
