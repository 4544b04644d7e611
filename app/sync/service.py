"""Running a sync of a district: what the worker's job and `roster sync` both call."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass

import asyncpg

from app.clever.errors import CleverError
from app.settings import Settings
from app.sync import connections, runs
from app.sync.full import (
    DatabaseConnectionLost,
    ProgressCallback,
    SyncOptions,
    SyncOutcome,
    coalesce,
    describe,
    is_connection_lost,
    run_full_sync,
)
from app.sync.incremental import run_incremental_sync
from app.sync.locks import district_lock
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.tokens import DistrictTokens, UnknownDistrictError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncDeps:
    """What a sync needs, built once per process (worker start-up, CLI command)."""

    settings: Settings
    pool: asyncpg.Pool
    tokens: DistrictTokens
    # Waits before running a sync again after it lost its database connection (a restarted
    # or failed-over Postgres, a terminated backend); one retry per entry.
    database_retry_delays: tuple[float, ...] = (1.0, 5.0)

    @property
    def options(self) -> SyncOptions:
        return SyncOptions.from_settings(self.settings)


async def sync_district(
    deps: SyncDeps,
    district_id: str,
    *,
    mode: RunMode = RunMode.FULL,
    trigger: RunTrigger = RunTrigger.SCHEDULE,
    run_id: uuid.UUID | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncOutcome:
    """Sync one district as run `run_id` (recorded now when not given)."""
    if run_id is None:
        async with deps.pool.acquire() as connection:
            run_id = await runs.create_run(connection, district_id, mode, trigger)
    # Each attempt takes the lock first, before anything that may take time (asking Clever
    # for the token): the queue tells a job that is starting from one whose worker died by
    # this lock. A lost database connection may have taken the lock with it: a retry takes
    # it again, and coalesces if another sync got there first.
    for attempt, delay in enumerate((*deps.database_retry_delays, None), start=1):
        try:
            async with district_lock(deps.pool, district_id) as acquired:
                if not acquired:
                    return await _lock_taken(deps.pool, run_id)
                return await _sync_locked(
                    deps, district_id, mode, run_id, on_progress, final_attempt=delay is None
                )
        except Exception as exc:
            # Postgres unreachable before the run could even take its lock (restarting,
            # failing over): tried again like a connection lost mid-run.
            if not isinstance(exc, DatabaseConnectionLost) and not is_connection_lost(exc):
                raise
            if delay is None:
                return await _unreachable(deps.pool, run_id, exc)
            logger.warning(
                "sync lost its database connection; running it again",
                extra={
                    "district_id": district_id,
                    "run_id": str(run_id),
                    "attempt": attempt,
                    "error": str(exc),
                },
            )
            await asyncio.sleep(delay)
    raise AssertionError("the last attempt never raises DatabaseConnectionLost")


async def _unreachable(pool: asyncpg.Pool, run_id: uuid.UUID, exc: Exception) -> SyncOutcome:
    """The outcome of a run that never reached its database again: failed, naming the
    cause. The run's row says so if Postgres takes the write; otherwise the district's next
    run, or the reaper, ends it as interrupted."""
    error = describe(exc)
    with suppress(Exception):
        async with pool.acquire() as connection:
            await runs.finish_run(connection, run_id, RunStatus.FAILED, error=error)
    return SyncOutcome(run_id, RunStatus.FAILED, error=error)


# How long a run that found its district locked waits to see whether the holder is
# carrying out this same run (a worker and `roster sync` both took it up) before coalescing.
SAME_RUN_WAIT_SECONDS = 2.0
FOLLOW_INTERVAL_SECONDS = 1.0


async def _lock_taken(pool: asyncpg.Pool, run_id: uuid.UUID) -> SyncOutcome:
    """Another process holds the district's lock: it runs this very run (left alone), or
    another one (this run is coalesced into it)."""
    deadline = time.monotonic() + SAME_RUN_WAIT_SECONDS
    while True:
        async with pool.acquire() as connection:
            run = await runs.get_run(connection, run_id)
        if run is not None and run["status"] != RunStatus.QUEUED:
            return _outcome_of(run)
        if time.monotonic() > deadline:
            return await coalesce(pool, run_id)
        await asyncio.sleep(0.1)


async def follow_run(pool: asyncpg.Pool, run_id: uuid.UUID) -> SyncOutcome:
    """Wait for a run another process carries out to end (or be held); how it ended."""
    while True:
        async with pool.acquire() as connection:
            run = await runs.get_run(connection, run_id)
        if run is None or run["status"] not in runs.ACTIVE_STATUSES:
            return _outcome_of(run) if run is not None else SyncOutcome(run_id, RunStatus.FAILED)
        await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)


def _outcome_of(run: asyncpg.Record) -> SyncOutcome:
    return SyncOutcome(
        run["id"],
        RunStatus(run["status"]),
        counts=run["counts"] or {},
        warnings=run["warnings_count"],
        error=run["error"],
        held_reason=run["held_reason"],
    )


async def _sync_locked(
    deps: SyncDeps,
    district_id: str,
    mode: RunMode,
    run_id: uuid.UUID,
    on_progress: ProgressCallback | None,
    *,
    final_attempt: bool,
) -> SyncOutcome:
    async with deps.pool.acquire() as connection:
        run = await runs.get_run(connection, run_id)
    if run is None or run["status"] not in runs.ACTIVE_STATUSES:
        # Ended while its job waited (the reaper, a superseding sync): nothing to do.
        status = RunStatus(run["status"]) if run is not None else RunStatus.FAILED
        return SyncOutcome(run_id, status, error="the run had ended before it could start")
    try:
        token = await deps.tokens.token_for(district_id)
    except UnknownDistrictError as exc:
        async with deps.pool.acquire() as connection:
            await connections.mark_disconnected(connection, district_id)
        return await _fail(deps, run_id, f"disconnected: {exc}")
    except CleverError as exc:
        return await _fail(deps, run_id, str(exc))
    async with deps.pool.acquire() as connection:
        await connections.mark_connected(connection, district_id)
    run_sync = run_incremental_sync if mode is RunMode.INCREMENTAL else run_full_sync
    async with deps.tokens.client_for(token, district_id) as client:
        outcome = await run_sync(
            deps.pool,
            client,
            district_id,
            run_id,
            deps.options,
            on_progress,
            final_attempt=final_attempt,
        )
    if outcome.status is RunStatus.FAILED and not deps.tokens.serves(district_id):
        # Clever rejected the token and, asked again, named none for the district.
        async with deps.pool.acquire() as connection:
            await connections.mark_disconnected(connection, district_id)
    return outcome


async def _fail(deps: SyncDeps, run_id: uuid.UUID, message: str) -> SyncOutcome:
    async with deps.pool.acquire() as connection:
        await runs.finish_run(connection, run_id, RunStatus.FAILED, error=message)
    return SyncOutcome(run_id, RunStatus.FAILED, error=message)
