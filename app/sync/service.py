"""Running a sync of a district: what the worker's job and `roster sync` both call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from app.clever.errors import CleverError
from app.settings import Settings
from app.sync import connections, runs
from app.sync.full import ProgressCallback, SyncOptions, SyncOutcome, run_full_sync
from app.sync.incremental import run_incremental_sync
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.tokens import DistrictTokens, UnknownDistrictError


@dataclass(frozen=True)
class SyncDeps:
    """What a sync needs, built once per process (worker start-up, CLI command)."""

    settings: Settings
    pool: asyncpg.Pool
    tokens: DistrictTokens

    @property
    def options(self) -> SyncOptions:
        return SyncOptions(
            max_deactivate_ratio=self.settings.sync_max_deactivate_ratio,
            sensitive_fields_enabled=self.settings.sensitive_fields_enabled,
            events_max_age_days=self.settings.sync_events_max_age_days,
        )


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
    async with deps.tokens.client_for(token, district_id) as client:
        if mode is RunMode.INCREMENTAL:
            outcome = await run_incremental_sync(
                deps.pool, client, district_id, run_id, deps.options, on_progress
            )
        else:
            outcome = await run_full_sync(
                deps.pool, client, district_id, run_id, deps.options, on_progress
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
