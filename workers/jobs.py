"""Job functions the worker runs, and its cron schedule.

Jobs take ids, never objects or tokens, and are safe to run twice (arq may retry a job):
a second run of a district's sync finds the lock or the data already applied.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from arq.cron import CronJob, cron
from arq.worker import Retry, func

from app import audit
from app.history import webhooks
from app.history.prune import prune
from app.settings import Settings, parse_cron
from app.sync import connections, runs
from app.sync.full import SyncError, decide_held_run
from app.sync.queue import (
    APPLY_HELD_FUNCTION,
    QUEUE_NAME,
    SYNC_FUNCTION,
    SYNC_JOB_TIMEOUT_SECONDS,
    DistrictBusyError,
    reap_dead_runs,
    request_sync,
)
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district

logger = logging.getLogger(__name__)

DISPATCH_WEBHOOKS = "dispatch_webhooks"

CANCELLED = (
    f"cancelled: the job ran past its {SYNC_JOB_TIMEOUT_SECONDS // 3600} h timeout,"
    " or its worker was stopped"
)
# Applying a held run merges staged rows only: no Clever requests.
APPLY_JOB_TIMEOUT_SECONDS = 3600
APPLY_MAX_TRIES = 5
# How long an approved run waits for a `roster sync` of its district in another process.
APPLY_RETRY_SECONDS = 60


async def run_sync(
    ctx: dict[str, Any],
    district_id: str,
    mode: str = RunMode.FULL.value,
    trigger: str = RunTrigger.SCHEDULE.value,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Sync one district (the `sync_district` job)."""
    deps: SyncDeps = ctx["sync"]
    run = uuid.UUID(run_id) if run_id else None
    try:
        outcome = await sync_district(
            deps, district_id, mode=RunMode(mode), trigger=RunTrigger(trigger), run_id=run
        )
    except asyncio.CancelledError:
        # arq cancels a job past its timeout, or when its worker shuts down, and records
        # nothing on the run: say so here.
        if run is not None:
            async with deps.pool.acquire() as connection:
                await runs.finish_run(connection, run, RunStatus.FAILED, error=CANCELLED)
        raise
    logger.info(
        "sync finished",
        extra={"district_id": district_id, "run_id": str(outcome.run_id), "status": outcome.status},
    )
    if outcome.status is RunStatus.SUCCEEDED:
        await _notify_subscribers(ctx)
    return {"run_id": str(outcome.run_id), "status": outcome.status.value}


async def _notify_subscribers(ctx: dict[str, Any]) -> None:
    """Have the webhooks' changes sent now rather than at the next dispatch tick (one
    dispatch queued at a time)."""
    await ctx["redis"].enqueue_job(
        DISPATCH_WEBHOOKS, _job_id=DISPATCH_WEBHOOKS, _queue_name=QUEUE_NAME
    )


async def apply_held_run(
    ctx: dict[str, Any], district_id: str, run_id: str, decided_by: str
) -> dict[str, Any]:
    """Apply a held run someone approved (the `apply_held_run` job).

    It runs under the district's job id, so no queued sync of the district overlaps it; a
    sync holding the district's lock from another process (`roster sync`) makes it try
    again later. A run no longer held (rejected meanwhile, or already applied) is left alone.
    """
    deps: SyncDeps = ctx["sync"]
    held = uuid.UUID(run_id)
    try:
        outcome = await decide_held_run(
            deps.pool, held, approve=True, decided_by=decided_by, options=deps.options
        )
    except SyncError as exc:
        async with deps.pool.acquire() as connection:
            run = await runs.get_run(connection, held)
        status = run["status"] if run is not None else None
        if status == RunStatus.HELD and ctx["job_try"] < APPLY_MAX_TRIES:
            raise Retry(defer=APPLY_RETRY_SECONDS) from exc
        logger.warning(
            "held run not applied",
            extra={"district_id": district_id, "run_id": run_id, "error": str(exc)},
        )
        return {"run_id": run_id, "status": status, "error": str(exc)}
    logger.info(
        "held run applied",
        extra={"district_id": district_id, "run_id": run_id, "status": outcome.status},
    )
    if outcome.status is RunStatus.SUCCEEDED:
        await _notify_subscribers(ctx)
    return {"run_id": run_id, "status": outcome.status.value}


async def schedule_full_syncs(ctx: dict[str, Any]) -> int:
    """Queue a full sync of every district a token serves, except those Clever has paused
    (the SYNC_FULL_CRON job)."""
    deps: SyncDeps = ctx["sync"]
    served = await _served_districts(deps)
    async with deps.pool.acquire() as connection:
        paused = await connections.paused_districts(connection, served)
    for district_id in paused:
        logger.info(
            "scheduled full sync skipped: paused by Clever", extra={"district_id": district_id}
        )
    return await _queue_syncs(ctx, [d for d in served if d not in paused], RunMode.FULL)


async def _served_districts(deps: SyncDeps) -> list[str]:
    """The districts some token serves now; the mirrored ones no token serves are marked
    disconnected, and those served again reconnected."""
    served = await deps.tokens.district_ids()
    async with deps.pool.acquire() as connection:
        await connections.reconcile(connection, served)
    return served


async def poll_events(ctx: dict[str, Any]) -> int:
    """Queue an incremental sync of every mirrored district a token serves whose newest run
    was asked for at least SYNC_EVENTS_INTERVAL_SECONDS ago (the events poll, every 30 s).

    Asking through `request_sync` joins a run already queued or running, so a poll never
    stacks on a full sync; a district without an events cursor gets a full sync instead.
    """
    deps: SyncDeps = ctx["sync"]
    district_ids = await _served_districts(deps)
    async with deps.pool.acquire() as connection:
        due = await runs.due_for_poll(
            connection, district_ids, deps.settings.sync_events_interval_seconds
        )
    return await _queue_syncs(ctx, due, RunMode.INCREMENTAL)


async def _queue_syncs(ctx: dict[str, Any], district_ids: list[str], mode: RunMode) -> int:
    """Ask for a scheduled sync of each district; how many new runs were queued."""
    deps: SyncDeps = ctx["sync"]
    queued = 0
    for district_id in district_ids:
        try:
            request = await request_sync(
                ctx["redis"], deps.pool, district_id, mode=mode, trigger=RunTrigger.SCHEDULE
            )
        except DistrictBusyError as exc:
            logger.warning(
                "scheduled sync not queued",
                extra={"district_id": district_id, "mode": mode.value, "error": str(exc)},
            )
            continue
        queued += request.queued
    return queued


async def reap_runs(ctx: dict[str, Any]) -> int:
    """Fail runs whose worker died and free their districts (every minute)."""
    deps: SyncDeps = ctx["sync"]
    reaped = await reap_dead_runs(ctx["redis"], deps.pool)
    for run_id in reaped:
        logger.warning("interrupted sync run failed by the reaper", extra={"run_id": str(run_id)})
    return len(reaped)


async def prune_history(ctx: dict[str, Any]) -> int:
    """Delete changes older than HISTORY_RETENTION_DAYS (daily); how many went."""
    deps: SyncDeps = ctx["sync"]
    async with deps.pool.acquire() as connection:
        pruned = await prune(connection, retention_days=ctx["settings"].history_retention_days)
    logger.info(
        "change log pruned",
        extra={"deleted": pruned.deleted, "before": pruned.cutoff.isoformat()},
    )
    return pruned.deleted


async def prune_audit(ctx: dict[str, Any]) -> int:
    """Delete audit events older than AUDIT_RETENTION_DAYS (daily); how many went."""
    deps: SyncDeps = ctx["sync"]
    async with deps.pool.acquire() as connection:
        deleted = await audit.prune(connection, retention_days=ctx["settings"].audit_retention_days)
    logger.info("audit trail pruned", extra={"deleted": deleted})
    return deleted


async def dispatch_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    """Send the webhooks their new changes (every 10 s, and after each successful run)."""
    deps: SyncDeps = ctx["sync"]
    made, sent = await webhooks.dispatch(deps.pool, webhooks.webhook_settings(ctx["settings"]))
    return {"planned": made, "sent": sent}


async def check_connections(ctx: dict[str, Any]) -> dict[str, str]:
    """Report that this worker reaches Postgres and Redis (a diagnostic job)."""
    deps: SyncDeps = ctx["sync"]
    server_version = await deps.pool.fetchval("SHOW server_version")
    await ctx["redis"].ping()
    return {"postgres": str(server_version), "redis": "ok", "job_id": str(ctx["job_id"])}


FUNCTIONS: list[Any] = [
    # keep_result=0: a finished job frees the district's job id at once, so the next can queue.
    func(
        run_sync, name=SYNC_FUNCTION, timeout=SYNC_JOB_TIMEOUT_SECONDS, keep_result=0, max_tries=3
    ),
    func(
        apply_held_run,
        name=APPLY_HELD_FUNCTION,
        timeout=APPLY_JOB_TIMEOUT_SECONDS,
        keep_result=0,
        max_tries=APPLY_MAX_TRIES,
    ),
    # keep_result=0: the job id frees at once, so a run finishing mid-dispatch queues the next.
    func(dispatch_webhooks, name=DISPATCH_WEBHOOKS, keep_result=0, max_tries=1),
    check_connections,
]


def cron_jobs(settings: Settings) -> list[CronJob]:
    """Full syncs of every district on SYNC_FULL_CRON (UTC); the events poll every 30 s,
    which queues the districts due after SYNC_EVENTS_INTERVAL_SECONDS; the reaper of dead
    runs every minute (and when the worker starts); the change log's prune daily at 04:30
    and the audit trail's at 04:40;
    the webhooks' dispatch every 10 s."""
    minute, hour, day, month, weekday = parse_cron(settings.sync_full_cron)
    return [
        cron(
            schedule_full_syncs,
            name="schedule_full_syncs",
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            weekday=weekday,
            unique=True,
            run_at_startup=False,
        ),
        cron(
            poll_events,
            name="poll_events",
            second={0, 30},
            unique=True,
            run_at_startup=False,
        ),
        cron(reap_runs, name="reap_runs", second={15}, unique=True, run_at_startup=True),
        cron(prune_history, name="prune_history", hour={4}, minute={30}, unique=True),
        cron(prune_audit, name="prune_audit", hour={4}, minute={40}, unique=True),
        cron(
            dispatch_webhooks,
            name="dispatch_webhooks_tick",
            second={0, 10, 20, 30, 40, 50},
            unique=True,
            run_at_startup=False,
        ),
    ]
