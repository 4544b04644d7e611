"""The arq worker: its settings, start-up and shutdown.

Run it with `roster worker`; `roster worker --check` (or `arq workers.main.WorkerSettings
--check`) answers whether a worker on this Redis reported itself alive recently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

from arq.connections import ArqRedis

from app.mirror.pg import create_pool
from app.redis import redis_settings
from app.settings import Settings, load_settings
from app.sync.queue import QUEUE_NAME, SYNC_JOB_TIMEOUT_SECONDS, deserialize_job, serialize_job
from app.sync.service import SyncDeps
from app.sync.tokens import DistrictTokens
from workers import jobs

__all__ = ["QUEUE_NAME", "deserialize_job", "serialize_job", "worker_settings"]

HEALTH_CHECK_INTERVAL_SECONDS = 10
# Syncs running at once in one worker process; more workers scale out across machines.
MAX_JOBS = 4


class WorkerContext(TypedDict):
    """What every job receives as `ctx` (arq adds `redis`, `job_id` and `job_try`)."""

    redis: ArqRedis
    settings: Settings
    sync: SyncDeps


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq's worker configuration for these settings."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        pool = await create_pool(settings, max_size=2 * MAX_JOBS + 2)
        ctx.update(
            settings=settings,
            sync=SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings)),
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        sync: SyncDeps | None = ctx.get("sync")
        if sync is not None:
            await sync.pool.close()

    return {
        "functions": jobs.FUNCTIONS,
        "cron_jobs": jobs.cron_jobs(settings),
        # Schedules read in UTC whatever the machine's clock zone (arq's default is local).
        "timezone": dt.UTC,
        "queue_name": QUEUE_NAME,
        "redis_settings": redis_settings(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "max_jobs": MAX_JOBS,
        # The longest job timeout: the queue reads when a job started from arq's in-progress
        # key, which lives that long plus 10 s.
        "job_timeout": SYNC_JOB_TIMEOUT_SECONDS,
        "keep_result": 24 * 3600,
    }


def __getattr__(name: str) -> Any:
    # `arq workers.main.WorkerSettings` reads the class at import; build it from the
    # environment only when asked, so importing this module opens nothing and reads nothing.
    if name == "WorkerSettings":
        return type("WorkerSettings", (object,), worker_settings(load_settings()))
    raise AttributeError(name)
