"""Scenario `profile`: where a sync's time goes, phase by phase and statement by statement.

The sandbox serves from its own process; the sync runs in this one (`sync_district`, as
the worker calls it) so that timers can be patched in (`bench.instruments`). Four runs on
one fresh database: a first sync, a no-change re-sync and an incremental run applying the
`events` scenario's change set, each timed per phase and per SQL statement, then a further
re-sync under cProfile for the Python functions (cProfile slows Python down, so its run is
not used for the timings). The `.prof` file is kept beside the JSON for `python -m pstats`
or snakeviz.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from app.mirror.pg import create_pool
from app.settings import CleverApiVersion, Settings
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from app.sync.tokens import DistrictTokens
from bench import events, report
from bench.databases import checkpoint, scratch_database
from bench.instruments import Instruments, Timings
from bench.options import BenchOptions
from bench.processes import Sandbox
from bench.processes import sandbox_process as start_sandbox


def sync_settings(database_url: str, redis_url: str, sandbox: Sandbox) -> Settings:
    """Settings of a worker syncing the sandbox's district (the environment is ignored)."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        clever_api_base_url=sandbox.base_url,
        clever_api_version=CleverApiVersion.V3_1,
        clever_district_tokens=[sandbox.token],  # type: ignore[list-item]
    )


async def timed_sync(deps: SyncDeps, district_id: str, mode: RunMode = RunMode.FULL) -> float:
    """One sync; its wall time. Raises unless it succeeded."""
    started = time.perf_counter()
    outcome = await sync_district(deps, district_id, mode=mode, trigger=RunTrigger.CLI)
    elapsed = time.perf_counter() - started
    if outcome.status is not RunStatus.SUCCEEDED:
        raise RuntimeError(f"the sync ended {outcome.status}: {outcome.error}")
    return elapsed


async def profiled(call: Callable[[], Awaitable[float]], path: Path) -> pstats.Stats:
    """Run `call` under cProfile; its statistics (also written to `path`)."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await call()
    finally:
        profiler.disable()
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)
    return pstats.Stats(profiler)


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its tables, save its figures."""
    runs: dict[str, dict[str, Any]] = {}
    python: list[dict[str, Any]] = []
    with start_sandbox(
        options.size, log_dir=options.log_dir, startup_timeout=options.timeout
    ) as sandbox:
        async with scratch_database(options.server_url, "profile") as database:
            settings = sync_settings(database.url, options.redis_url, sandbox)
            pool = await create_pool(settings)
            try:
                deps = SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings))
                with Instruments() as instruments:
                    for name, mode in (
                        ("first sync", RunMode.FULL),
                        ("re-sync", RunMode.FULL),
                        ("incremental", RunMode.INCREMENTAL),
                    ):
                        async with pool.acquire() as connection:
                            if mode is RunMode.INCREMENTAL:
                                await _change_students(sandbox, connection)
                            await checkpoint(connection)
                        instruments.reset()
                        wall = await timed_sync(deps, sandbox.district_id, mode)
                        phases, statements = instruments.reset()
                        runs[name] = _run_figures(options, name, wall, phases, statements)
                if options.cprofile:
                    async with pool.acquire() as connection:
                        await checkpoint(connection)
                    prof = options.results_dir / f"profile-{options.size}.prof"
                    stats = await profiled(lambda: timed_sync(deps, sandbox.district_id), prof)
                    python = _python_figures(options, stats)
                    print(f"\ncProfile of a further re-sync written to {prof}")
            finally:
                await pool.close()
    figures = {"runs": runs, "python_functions": python}
    report.write_json(options.results_dir, "profile", options.size, figures)
    return figures


async def _change_students(sandbox: Sandbox, connection: asyncpg.Connection) -> None:
    """Give the incremental run its events: one update of each of up to `events.EVENTS`
    students (the `events` scenario's change set)."""
    students = [
        row[0]
        for row in await connection.fetch(
            "SELECT id FROM users WHERE 'student' = ANY(roles) ORDER BY id LIMIT $1",
            events.EVENTS,
        )
    ]
    await asyncio.to_thread(events.change_students, sandbox.base_url, sandbox.district_id, students)


def _run_figures(
    options: BenchOptions, name: str, wall: float, phases: Timings, statements: Timings
) -> dict[str, Any]:
    """Print one run's phase and statement tables; their figures."""
    top = options.top
    report.print_table(
        f"profile: {name} of a size-{options.size} district, {report.seconds(wall)} wall;"
        " phases by total time (self = total minus timed calls awaited in the same task)",
        ["phase", "calls", "total", "self", "total/wall"],
        [
            [label, stat.calls, report.seconds(stat.seconds),
             report.seconds(stat.self_seconds), f"{stat.seconds / wall:.0%}"]
            for label, stat in phases.ranked()[:top]
        ],
    )  # fmt: skip
    sql_total = sum(stat.seconds for stat in statements.stats.values())
    report.print_table(
        f"profile: {name}, SQL statements by total time"
        f" ({report.seconds(sql_total)} in SQL, {sql_total / wall:.0%} of wall)",
        ["caller | statement", "calls", "total", "mean"],
        [
            [label, stat.calls, report.seconds(stat.seconds),
             f"{stat.seconds / stat.calls * 1000:,.1f} ms"]
            for label, stat in statements.ranked()[:top]
        ],
    )  # fmt: skip
    return {
        "wall_seconds": wall,
        "sql_seconds": sql_total,
        "phases": {label: vars(stat) for label, stat in phases.ranked()},
        "statements": {label: vars(stat) for label, stat in statements.ranked()},
    }


def _python_figures(options: BenchOptions, stats: pstats.Stats) -> list[dict[str, Any]]:
    """Print the functions with the most own time; their figures."""
    entries = []
    # pstats keeps {(file, line, function): (primitive calls, calls, own, cumulative, callers)}.
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (file, line, function), (_, calls, own, cumulative, _) in raw.items():
        where = f"{Path(file).name}:{line}" if line else file
        entries.append(
            {"function": f"{function} ({where})", "calls": calls, "own": own, "cum": cumulative}
        )
    entries.sort(key=lambda entry: entry["own"], reverse=True)
    total = sum(entry["own"] for entry in entries)
    report.print_table(
        f"profile: Python functions of a re-sync by own time (cProfile, {report.seconds(total)})",
        ["function", "calls", "own", "cumulative", "own share"],
        [
            [e["function"], report.count(e["calls"]), report.seconds(e["own"]),
             report.seconds(e["cum"]), f"{e['own'] / total:.0%}"]
            for e in entries[: options.top]
        ],
    )  # fmt: skip
    return entries[: options.top * 4]
