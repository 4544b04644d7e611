"""Queueing syncs for the worker (arq on Redis): one queued or running sync per district.

The API, the cron schedule and `roster demo` all go through `request_sync`. Triggers of one
district are serialized by a Postgres advisory lock (so across API replicas too): the first
records a queued run, commits it and only then queues its job (the worker may start it at
once); the others find that run and return it instead of recording runs of their own.
Approving a held run goes through the same lock and the district's job id, so it cannot
overlap a sync of the district either.

A queued or running run is only returned while something will carry it to an end: its job
waits in Redis, or a process holds the district's sync lock. A run whose process was killed,
or whose job is gone (Redis emptied, arq gave up), is marked failed and a new one is queued.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import DeserializationError
from arq.jobs import deserialize_job as read_job_definition

from app.redis import redis_settings
from app.settings import Settings
from app.sync import runs
from app.sync.locks import is_district_locked
from app.sync.runs import RunMode, RunStatus, RunTrigger

QUEUE_NAME = "roster:queue"
SYNC_FUNCTION = "sync_district"
APPLY_HELD_FUNCTION = "apply_held_run"

# How long triggers wait for another trigger of the same district to finish queueing.
REQUEST_LOCK_TIMEOUT_SECONDS = 10.0
# `roster sync` records its run, then takes the district's lock; until then its run has
# neither a job nor the lock.
CLI_START_GRACE = timedelta(minutes=10)
# The longest job the worker runs (a sync): arq keeps a job's in-progress key for the
# longest job timeout plus 10 s, so the key's remaining life tells when the job started.
SYNC_JOB_TIMEOUT_SECONDS = 6 * 3600
IN_PROGRESS_TTL_MS = (SYNC_JOB_TIMEOUT_SECONDS + 10) * 1000
# Between arq starting a job and the job taking the district's lock (milliseconds, at
# worst seconds on a loaded worker) the job is alive without the lock.
JOB_START_GRACE_MS = 60_000

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


def _as_queue(redis: ArqRedis) -> ArqRedis:
    """`redis` enqueueing in the worker's format, however its client was built (the API's
    shares its connections with this one)."""
    if redis.job_serializer is serialize_job and redis.default_queue_name == QUEUE_NAME:
        return redis
    return ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )


class DistrictBusyError(Exception):
    """The district's job slot is taken by something a new run cannot join (an approved held
    run being applied), or other triggers kept it too long; try again shortly."""


class RunNotHeldError(Exception):
    """Only runs the mass-change guard held can be approved or rejected."""

    def __init__(self, run_id: uuid.UUID, status: str | None) -> None:
        what = "does not exist" if status is None else f"is {status}, not held"
        super().__init__(f"sync run {run_id} {what}")
        self.status = status


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
    """Return the district's pending run, or record a queued run and queue its job.

    Concurrent triggers of a district record one run and queue one job between them. Raises
    DistrictBusyError while an approved held run of the district is being applied.
    """
    queue = _as_queue(redis)
    async with _district_queue(pool, district_id) as connection:
        slot = await _settle(queue, connection, district_id)
        if slot.pending is not None:
            return SyncRequest(slot.pending["id"], queued=False)
        if slot.busy:
            raise DistrictBusyError(
                f"district {district_id} has a job a new sync cannot join "
                "(an approved held run being applied); try again shortly"
            )
        run_id = await runs.create_run(connection, district_id, mode, trigger)
        job = {
            "district_id": district_id,
            "mode": mode.value,
            "trigger": trigger.value,
            "run_id": str(run_id),
        }
        await _enqueue_or_fail(queue, connection, SYNC_FUNCTION, job, failing=run_id)
    return SyncRequest(run_id, queued=True)


@dataclass(frozen=True)
class CliClaim:
    run_id: uuid.UUID
    mode: RunMode
    # The run is being carried out by another process (a worker): follow it.
    running_elsewhere: bool


async def claim_cli_run(pool: asyncpg.Pool, district_id: str, mode: RunMode) -> CliClaim:
    """The run `roster sync` carries out, joining the district's pending one like any
    trigger (needs no Redis): a run running elsewhere is followed; a queued one is run in
    this process (its job, when a worker reaches it, finds it taken or ended); otherwise a
    new run is recorded, which triggers meanwhile join."""
    async with _district_queue(pool, district_id) as connection:
        locked = await is_district_locked(connection, district_id)
        pending = await connection.fetchrow(
            "SELECT id, status, mode FROM sync_runs WHERE district_id = $1"
            " AND status IN ('queued', 'running') ORDER BY created_at DESC, id DESC LIMIT 1",
            district_id,
        )
        if pending is not None and locked and pending["status"] == RunStatus.RUNNING:
            return CliClaim(pending["id"], RunMode(pending["mode"]), running_elsewhere=True)
        if pending is not None and pending["status"] == RunStatus.QUEUED:
            return CliClaim(pending["id"], RunMode(pending["mode"]), running_elsewhere=False)
        run_id = await runs.create_run(connection, district_id, mode, RunTrigger.CLI)
    return CliClaim(run_id, mode, running_elsewhere=False)


@dataclass(frozen=True)
class ApprovalRequest:
    run_id: uuid.UUID
    # False when the run's approval was already queued (by this or an earlier request).
    queued: bool


async def request_approval(
    redis: ArqRedis, pool: asyncpg.Pool, run_id: uuid.UUID, *, decided_by: str
) -> ApprovalRequest:
    """Queue the job applying a held run, recording who approved it.

    The job runs under the district's job id, so it never overlaps a sync of the district.
    Raises RunNotHeldError for a run that is not held, and DistrictBusyError while a sync of
    the district is queued or running (that sync will supersede the held run).
    """
    queue = _as_queue(redis)
    async with pool.acquire() as connection:
        run = await runs.get_run(connection, run_id)
    if run is None:
        raise RunNotHeldError(run_id, None)
    district_id: str = run["district_id"]
    async with _district_queue(pool, district_id) as connection:
        run = await runs.get_run(connection, run_id)
        assert run is not None  # runs are never deleted
        if run["status"] != RunStatus.HELD:
            raise RunNotHeldError(run_id, run["status"])
        slot = await _settle(queue, connection, district_id)
        if _applies(slot.job, run_id):
            return ApprovalRequest(run_id, queued=False)
        if slot.pending is not None or slot.busy:
            raise DistrictBusyError(
                f"district {district_id} has a sync queued or running (which will replace "
                "this held run) or another held run being applied"
            )
        await runs.record_decision(connection, run_id, decided_by)
        job = {"district_id": district_id, "run_id": str(run_id), "decided_by": decided_by}
        await _enqueue_or_fail(queue, connection, APPLY_HELD_FUNCTION, job, failing=None)
    return ApprovalRequest(run_id, queued=True)


async def approval_pending(redis: ArqRedis, run_id: uuid.UUID, district_id: str) -> bool:
    """Whether the job applying this held run is queued or running."""
    return _applies(await _district_job(_as_queue(redis), district_id), run_id)


INTERRUPTED = "interrupted: the process running it stopped"


async def reap_dead_runs(redis: ArqRedis, pool: asyncpg.Pool) -> list[uuid.UUID]:
    """Fail the runs left `running` by a process that died, and free their districts' job
    ids; fail queued runs whose job is gone. The worker's reaper calls it every minute, so
    no trigger is needed.

    A sync holds its district's lock from before it marks its run running until after it
    ends it, and the lock dies with the process: a running run whose district nobody holds
    is dead for certain. Its arq job (in progress for the whole job timeout otherwise) is
    forgotten, so the district can be queued again at once.
    """
    queue = _as_queue(redis)
    async with pool.acquire() as connection:
        running = await connection.fetch(
            "SELECT id, district_id FROM sync_runs WHERE status = 'running' ORDER BY created_at"
        )
        waiting = await connection.fetch(
            "SELECT DISTINCT district_id FROM sync_runs WHERE status = 'queued'"
        )
    # Queued runs whose job is gone (arq gave up after its tries, Redis was emptied) are
    # failed as lost, as the next trigger would.
    for row in waiting:
        async with _district_queue(pool, row["district_id"]) as connection:
            await _settle(queue, connection, row["district_id"])
    reaped: list[uuid.UUID] = []
    for candidate in running:
        run_id: uuid.UUID = candidate["id"]
        district_id: str = candidate["district_id"]
        async with _district_queue(pool, district_id) as connection:
            if await is_district_locked(connection, district_id):
                continue
            run = await runs.get_run(connection, run_id)
            if run is None or run["status"] != RunStatus.RUNNING:
                continue
            await runs.finish_run(connection, run_id, RunStatus.FAILED, error=INTERRUPTED)
            job = await _district_job(queue, district_id)
            if job is not None and job.run_id in (run_id, None):
                await _forget_abandoned(queue, district_id)
        reaped.append(run_id)
    return reaped


def _applies(job: _Job | None, run_id: uuid.UUID) -> bool:
    return job is not None and job.function == APPLY_HELD_FUNCTION and job.run_id == run_id


@asynccontextmanager
async def _district_queue(
    pool: asyncpg.Pool, district_id: str
) -> AsyncIterator[asyncpg.Connection]:
    """One connection holding the district's queueing lock for the block.

    Everything under the lock uses this connection: waiting for a second one from a pool
    whose connections all wait for this lock would never end.
    """
    key = f"roster:sync-request:{district_id}"
    async with pool.acquire() as connection:
        try:
            await connection.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                key,
                timeout=REQUEST_LOCK_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise DistrictBusyError(
                f"other requests for district {district_id} are still being queued"
            ) from None
        try:
            yield connection
        finally:
            # A connection going back to the pool drops its session locks anyway.
            await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


@dataclass(frozen=True)
class _Job:
    """The district's arq job, as far as queueing decisions need it."""

    function: str | None
    run_id: uuid.UUID | None
    in_progress: bool
    # Started by a worker moments ago: it may not hold the district's lock yet.
    starting: bool = False


@dataclass(frozen=True)
class _Slot:
    # The newest queued or running run something will carry to its end.
    pending: asyncpg.Record | None
    # The district's job id or sync lock is taken.
    busy: bool
    job: _Job | None


async def _settle(queue: ArqRedis, connection: asyncpg.Connection, district_id: str) -> _Slot:
    """Find the district's live pending run; mark queued or running runs nothing will ever
    finish as failed, and forget a job whose worker died."""
    locked = await is_district_locked(connection, district_id)
    job = await _district_job(queue, district_id)
    # A job just started may not have taken the lock yet: alive while its run waits to
    # start. Later, or once its run started (a run only starts under the lock), the worker
    # running it is gone.
    if (
        job is not None
        and job.in_progress
        and not locked
        and not (job.starting and await _run_waits(connection, job.run_id))
    ):
        await _forget_abandoned(queue, district_id)
        job = None
    pending: asyncpg.Record | None = None
    for run in await connection.fetch(
        "SELECT id, status, trigger = 'cli' AND created_at > now() - $2::interval AS starting"
        " FROM sync_runs WHERE district_id = $1 AND status IN ('queued', 'running')"
        " ORDER BY created_at DESC, id DESC",
        district_id,
        CLI_START_GRACE,
    ):
        reason = _why_dead(run, job, locked=locked)
        if reason is None:
            pending = pending or run
        else:
            await runs.finish_run(connection, run["id"], RunStatus.FAILED, error=reason)
    return _Slot(pending, busy=locked or job is not None, job=job)


async def _run_waits(connection: asyncpg.Connection, run_id: uuid.UUID | None) -> bool:
    if run_id is None:
        return False
    status = await connection.fetchval("SELECT status FROM sync_runs WHERE id = $1", run_id)
    return bool(status == RunStatus.QUEUED)


def _why_dead(run: asyncpg.Record, job: _Job | None, *, locked: bool) -> str | None:
    """Why nothing will finish this queued or running run, or None if something will."""
    if run["status"] == RunStatus.RUNNING:
        # A sync holds the district's lock from before it starts its run until it ends it.
        return None if locked else INTERRUPTED
    if job is not None and job.run_id == run["id"]:
        return None
    if run["starting"]:
        return None
    return "lost: its job is no longer queued (Redis emptied, or the worker gave up on it)"


async def _district_job(queue: ArqRedis, district_id: str) -> _Job | None:
    job_id = sync_job_id(district_id)
    # Milliseconds the in-progress key has left: -2 when there is none, -1 without expiry.
    left = int(await queue.pttl(in_progress_key_prefix + job_id))
    in_progress = left != -2
    starting = left >= 0 and IN_PROGRESS_TTL_MS - left < JOB_START_GRACE_MS
    raw = await queue.get(job_key_prefix + job_id)
    if raw is None:
        return _Job(None, None, in_progress=True, starting=starting) if in_progress else None
    try:
        definition = read_job_definition(raw, deserializer=queue.job_deserializer)
    except DeserializationError:
        return _Job(None, None, in_progress, starting)
    run_id = definition.kwargs.get("run_id")
    try:
        parsed = uuid.UUID(run_id) if isinstance(run_id, str) else None
    except ValueError:
        parsed = None
    return _Job(definition.function, parsed, in_progress, starting)


async def _forget_abandoned(queue: ArqRedis, district_id: str) -> None:
    """Forget the district's job: arq thinks it runs, but nobody holds the district's lock.

    A worker killed mid-job leaves arq's in-progress key for the job's whole timeout; without
    this the district could not be synced again for hours. A job that has just started and
    not yet taken the lock may be run twice; the second run then coalesces on the lock.
    """
    job_id = sync_job_id(district_id)
    await queue.delete(
        in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id
    )
    await queue.zrem(QUEUE_NAME, job_id)


async def _enqueue_or_fail(
    queue: ArqRedis,
    connection: asyncpg.Connection,
    function: str,
    job: dict[str, Any],
    *,
    failing: uuid.UUID | None,
) -> None:
    """Queue a job (keyword arguments only, under the district's job id); if it cannot be,
    end the run just recorded for it (`failing`) as failed.

    Only called under the district's queueing lock, after the run the job needs is committed.
    """
    try:
        queued = await queue.enqueue_job(function, _job_id=sync_job_id(job["district_id"]), **job)
    except Exception as exc:
        if failing is not None:
            await runs.finish_run(
                connection, failing, RunStatus.FAILED, error=f"could not be queued: {exc!r}"
            )
        raise
    if queued is None:
        if failing is not None:
            await runs.finish_run(
                connection,
                failing,
                RunStatus.FAILED,
                error="could not be queued: the district's job id was taken",
            )
        raise DistrictBusyError("the district's job id was taken by another job")
