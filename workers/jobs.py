"""Job functions the worker runs, and its cron schedule.

Jobs take ids, never objects or tokens, and are safe to run twice (arq may retry a job):
a second run of a district's sync finds the lock or the data already applied.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from arq.cron import CronJob, cron
from arq.worker import func
from sqlalchemy import text

from app.settings import Settings, parse_cron
from app.sync.queue import request_sync
from app.sync.runs import RunMode, RunTrigger
from app.sync.service import SyncDeps, sync_district

logger = logging.getLogger(__name__)

SYNC_JOB_TIMEOUT_SECONDS = 6 * 3600


async def run_sync(
    ctx: dict[str, Any],
    district_id: str,
    mode: str = RunMode.FULL.value,
    trigger: str = RunTrigger.SCHEDULE.value,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Sync one district (the `sync_district` job)."""
    deps: SyncDeps = ctx["sync"]
    outcome = await sync_district(
        deps,
        district_id,
        mode=RunMode(mode),
        trigger=RunTrigger(trigger),
        run_id=uuid.UUID(run_id) if run_id else None,
    )
    logger.info(
        "sync finished",
        extra={"district_id": district_id, "run_id": str(outcome.run_id), "status": outcome.status},
    )
    return {"run_id": str(outcome.run_id), "status": outcome.status.value}


async def schedule_full_syncs(ctx: dict[str, Any]) -> int:
    """Queue a full sync of every district a token serves (the SYNC_FULL_CRON job)."""
    deps: SyncDeps = ctx["sync"]
    queued = 0
    for district_id in await deps.tokens.district_ids():
        request = await request_sync(
            ctx["redis"], deps.pool, district_id, mode=RunMode.FULL, trigger=RunTrigger.SCHEDULE
        )
        queued += request.queued
    return queued


async def check_connections(ctx: dict[str, Any]) -> dict[str, str]:
    """Report that this worker reaches Postgres and Redis (a diagnostic job)."""
    async with ctx["engine"].connect() as connection:
        server_version = (await connection.execute(text("SHOW server_version"))).scalar_one()
    await ctx["redis"].ping()
    return {"postgres": str(server_version), "redis": "ok", "job_id": str(ctx["job_id"])}


FUNCTIONS: list[Any] = [
    # keep_result=0: a finished sync frees its job id at once, so the next one can queue.
    func(
        run_sync, name="sync_district", timeout=SYNC_JOB_TIMEOUT_SECONDS, keep_result=0, max_tries=3
    ),
    check_connections,
]


def cron_jobs(settings: Settings) -> list[CronJob]:
    """Full syncs of every district on SYNC_FULL_CRON (UTC)."""
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
        )
    ]
