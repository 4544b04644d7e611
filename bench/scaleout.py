"""Scenario `scaleout`: many small districts synced by 1, 2 and 3 worker processes.

The sandbox serves 200 tiny districts from its own process. For each worker count, a fresh
migrated database and an emptied Redis database get that many real `roster worker`
processes, started and given a few seconds to connect; then a full sync of every district
is queued at once (as the API's `POST /v1/sync` queues one), and the scenario waits until
every run is final. The figure is districts per minute, from the first run queued to the
last one finished, as Postgres recorded them; every run must succeed.

On this machine the workers share its cores with Postgres and the sandbox, so a count
beyond the cores shows the cost of contention rather than a gain.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from arq.connections import ArqRedis

from app.settings import to_asyncpg_url
from app.sync.queue import request_sync
from app.sync.runs import FINAL_STATUSES, RunMode, RunTrigger
from bench import report
from bench.databases import scratch_database
from bench.options import BenchOptions
from bench.processes import Sandbox, stop
from bench.processes import sandbox_process as start_sandbox

DISTRICTS = 200
WORKER_COUNTS = (1, 2, 3)
SIZE = "tiny"
# A scratch Redis database, emptied before and after each run.
REDIS_DB = 14
WORKER_START_SECONDS = 5.0
POLL_SECONDS = 0.25


def _redis_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{REDIS_DB}"))


@contextmanager
def workers(count: int, env: dict[str, str], options: BenchOptions) -> Iterator[list[int]]:
    """`count` `roster worker` processes with `env`, stopped (SIGTERM) after the block."""
    processes: list[subprocess.Popen[bytes]] = []
    options.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for number in range(count):
            log_path = options.log_dir / f"scaleout-worker-{count}-{number}.log"
            with log_path.open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app.cli", "worker"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            stop(process)


async def sync_all(
    count: int, sandbox: Sandbox, options: BenchOptions, database_url: str
) -> dict[str, Any]:
    """Every district's full sync by `count` workers: seconds, districts/min, outcomes."""
    redis_url = _redis_url(options.redis_url)
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("CLEVER_", "SYNC_", "API_"))
    }
    env = inherited | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CLEVER_API_BASE_URL": sandbox.base_url,
        "CLEVER_API_VERSION": "v3.1",
        "CLEVER_DISTRICT_TOKENS": ",".join(sandbox.tokens.values()),
        # Only the syncs queued here: no scheduled full sync or events poll joins in.
        "SYNC_FULL_CRON": "0 3 29 2 *",
        "SYNC_EVENTS_INTERVAL_SECONDS": "86400",
        "LOG_LEVEL": "WARNING",
    }
    redis = ArqRedis.from_url(redis_url)
    pool = await asyncpg.create_pool(to_asyncpg_url(database_url), min_size=1, max_size=4)
    assert pool is not None
    try:
        await redis.flushdb()
        with workers(count, env, options):
            await asyncio.sleep(WORKER_START_SECONDS)
            for district_id in sandbox.tokens:
                await request_sync(
                    redis, pool, district_id, mode=RunMode.FULL, trigger=RunTrigger.API
                )
            deadline = time.monotonic() + options.timeout
            while True:
                final = await pool.fetchval(
                    "SELECT count(*) FROM sync_runs WHERE status = ANY($1::text[])",
                    [str(status) for status in FINAL_STATUSES],
                )
                if final >= len(sandbox.tokens):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{final} of {len(sandbox.tokens)} runs final")
                await asyncio.sleep(POLL_SECONDS)
        row = await pool.fetchrow(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 AS seconds,"
            " count(*) FILTER (WHERE status = 'succeeded') AS succeeded,"
            " count(*) FILTER (WHERE status <> 'succeeded') AS other,"
            " percentile_cont(0.5) WITHIN GROUP"
            "  (ORDER BY extract(epoch FROM finished_at - started_at)) AS median_run"
            " FROM sync_runs"
        )
        assert row is not None
    finally:
        await pool.close()
        await redis.flushdb()
        await redis.aclose()
    seconds = float(row["seconds"])
    return {
        "workers": count,
        "districts": len(sandbox.tokens),
        "seconds": seconds,
        "districts_per_minute": len(sandbox.tokens) / seconds * 60,
        "succeeded": int(row["succeeded"]),
        "not_succeeded": int(row["other"]),
        "median_run_seconds": float(row["median_run"]),
    }


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its table, save its figures."""
    results = []
    with start_sandbox(
        SIZE, log_dir=options.log_dir, startup_timeout=options.timeout, districts=DISTRICTS
    ) as sandbox:
        for count in WORKER_COUNTS:
            async with scratch_database(options.server_url, f"scale{count}") as database:
                results.append(await sync_all(count, sandbox, options, database.url))
            last = results[-1]
            print(
                f"  {count} worker(s): {last['districts_per_minute']:,.0f} districts/min,"
                f" {last['not_succeeded']} not succeeded",
                flush=True,
            )
    one = results[0]["districts_per_minute"]
    report.print_table(
        f"scaleout: {DISTRICTS} {SIZE} districts, full syncs queued at once",
        ["workers", "wall", "districts/min", "vs 1 worker", "median run", "not succeeded"],
        [
            [
                str(r["workers"]),
                report.seconds(r["seconds"]),
                f"{r['districts_per_minute']:,.0f}",
                report.ratio(r["districts_per_minute"] / one),
                report.seconds(r["median_run_seconds"]),
                str(r["not_succeeded"]),
            ]
            for r in results
        ],
    )
    if any(r["not_succeeded"] for r in results):
        raise RuntimeError("some syncs did not succeed: see the worker logs")
    figures = {"results": results}
    report.write_json(options.results_dir, "scaleout", SIZE, figures)
    return figures
