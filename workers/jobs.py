"""Job functions the worker runs, and its cron schedule.

Jobs take ids, never objects, and are safe to run twice (arq may retry a job).
"""

from __future__ import annotations

from typing import Any

from arq.cron import CronJob
from sqlalchemy import text

from app.settings import Settings


async def check_connections(ctx: dict[str, Any]) -> dict[str, str]:
    """Report that this worker reaches Postgres and Redis (a diagnostic job)."""
    async with ctx["engine"].connect() as connection:
        server_version = (await connection.execute(text("SHOW server_version"))).scalar_one()
    await ctx["redis"].ping()
    return {"postgres": str(server_version), "redis": "ok", "job_id": str(ctx["job_id"])}


FUNCTIONS: list[Any] = [check_connections]


def cron_jobs(settings: Settings) -> list[CronJob]:
    """The periodic jobs (full syncs on SYNC_FULL_CRON, events on the interval)."""
    return []
