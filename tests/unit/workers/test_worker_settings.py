"""The worker's arq configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# The next full sync after noon UTC on 2026-12-01, as a worker started in this process's
# timezone schedules it.
NEXT_FULL_SYNC = textwrap.dedent(
    """
    import datetime as dt
    from arq.worker import Worker
    from app.settings import Settings
    from workers.main import worker_settings

    settings = Settings(database_url="postgresql://x/y", redis_url="redis://127.0.0.1:1/0")
    worker = Worker(**worker_settings(settings))
    job = next(job for job in worker.cron_jobs if job.name == "schedule_full_syncs")
    noon = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    job.calculate_next(noon.astimezone(worker.timezone))
    print(job.next_run.astimezone(dt.UTC).isoformat(timespec="minutes"))
    """
)


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo"])
def test_full_sync_cron_is_utc_on_a_machine_in_another_zone(zone: str) -> None:
    """SYNC_FULL_CRON `0 3 * * *` is 03:00 UTC even where the local clock is hours away."""
    result = subprocess.run(
        [sys.executable, "-c", NEXT_FULL_SYNC],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TZ": zone},
        check=True,
    )
    assert result.stdout.strip() == "2026-12-02T03:00+00:00"
