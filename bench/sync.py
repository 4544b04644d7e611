"""Scenario `sync`: full sync vs plain COPY, no-change re-sync, and memory.

Three processes, as in production: the sandbox serves a district at zero latency from its
own process; `roster sync DISTRICT_ID` (the real CLI, its peak RSS being the worker's) syncs
it into a fresh migrated database; this process only measures. Then:

1. first sync: wall time, rows in the live tables afterwards, rows/s;
2. the same sync again with nothing changed: wall time, its share of the first, and the
   rows it wrote (must be none);
3. baseline: the live rows dumped and loaded with plain `COPY` into a second fresh
   database with the same schema and indexes; rows/s, and the sync's ratio to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import report
from bench.baseline import TableLoad, dump_tables, load_tables
from bench.databases import (
    LIVE_TABLES,
    WriteMark,
    checkpoint,
    connect,
    row_counts,
    scratch_database,
)
from bench.options import BenchOptions
from bench.processes import ChildRun, Sandbox, cpu_seconds, run_child
from bench.processes import sandbox_process as start_sandbox
from sandbox.config import SIZES as SANDBOX_SIZES

# The targets the figures are held to.
MIN_COPY_RATIO = 0.45
MAX_RESYNC_SHARE = 0.25
MAX_WORKER_RSS = 300 * report.MB
# How much more than at `S` a larger district may take before the worker's memory counts
# as growing with the district.
RSS_GROWTH_TOLERANCE = 0.10
SIZES = tuple(SANDBOX_SIZES)
RECORDED_SETTINGS = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "synchronous_commit",
    "wal_compression",
)


@dataclass(frozen=True)
class SyncRun:
    """One `roster sync` process and the run it recorded."""

    wall_seconds: float
    run_seconds: float
    worker_peak_rss: int
    worker_cpu_seconds: float
    sandbox_cpu_seconds: float
    clever_requests: int
    counts: dict[str, Any]
    rss_samples: list[tuple[float, int]]
    """The worker's RSS over the run: (seconds since start, bytes)."""

    def rss_at(self, share: float) -> int:
        """The worker's RSS sampled at `share` (0..1) of its wall time."""
        moment = share * self.wall_seconds
        earlier = [rss for at, rss in self.rss_samples if at <= moment]
        return earlier[-1] if earlier else 0


def worker_environment(database_url: str, redis_url: str, sandbox: Sandbox) -> dict[str, str]:
    """The environment of a `roster` process syncing the sandbox's district."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CLEVER_", "SYNC_"))}
    return inherited | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CLEVER_API_BASE_URL": sandbox.base_url,
        "CLEVER_API_VERSION": "v3.1",
        "CLEVER_DISTRICT_TOKENS": sandbox.token,
        "LOG_LEVEL": "WARNING",
    }


async def run_sync(
    connection: asyncpg.Connection,
    sandbox: Sandbox,
    env: dict[str, str],
    log_path: Path,
    time_limit: float,
    mode: str = "full",
    source: Path | None = None,
    cpus: frozenset[int] | None = None,
) -> SyncRun:
    """Run `roster sync` once (after a checkpoint); fail unless the run succeeded. With
    `source`, the code of that checkout runs (`python -m` imports from the working dir);
    with `cpus`, the process is pinned to those cores (Postgres and the sandbox are not)."""
    await checkpoint(connection)
    sandbox_cpu = cpu_seconds(sandbox.pid)
    argv = [sys.executable, "-m", "app.cli", "sync", sandbox.district_id, "--mode", mode]
    if cpus is not None:
        # taskset execs the command: the child's pid, RSS and CPU time are still the sync's.
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    child: ChildRun = await asyncio.to_thread(
        run_child, argv, env=env, log_path=log_path, timeout=time_limit, cwd=source
    )
    sandbox_cpu = cpu_seconds(sandbox.pid) - sandbox_cpu
    run = await connection.fetchrow(
        "SELECT status, error, counts::text AS counts, clever_requests,"
        " extract(epoch FROM finished_at - started_at)::float8 AS seconds"
        " FROM sync_runs ORDER BY created_at DESC LIMIT 1"
    )
    if child.returncode != 0 or run is None or run["status"] != "succeeded":
        detail = run["error"] if run is not None else "no run recorded"
        raise RuntimeError(f"roster sync exited {child.returncode} ({detail}):\n{child.log_tail()}")
    return SyncRun(
        wall_seconds=child.seconds,
        run_seconds=float(run["seconds"]),
        worker_peak_rss=child.peak_rss,
        worker_cpu_seconds=child.cpu_seconds,
        sandbox_cpu_seconds=sandbox_cpu,
        clever_requests=int(run["clever_requests"]),
        counts=_json(run["counts"]),
        rss_samples=child.rss_samples,
    )


def _json(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


async def copy_baseline(
    synced: asyncpg.Connection, target_url: str, rows: dict[str, int]
) -> list[TableLoad]:
    """Plain COPY of the synced rows into the empty database at `target_url`."""
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as directory:
        files = await dump_tables(synced, LIVE_TABLES, Path(directory))
        target = await connect(target_url)
        try:
            return await load_tables(target, files, rows)
        finally:
            await target.close()


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its tables, save its figures."""
    logs = options.log_dir
    server = options.server_url
    with start_sandbox(options.size, log_dir=logs, startup_timeout=options.timeout) as sandbox:
        async with (
            scratch_database(server, "sync") as synced,
            # The baseline's empty tables, cloned before the sync so the schema is the same.
            scratch_database(server, "copy", template=synced) as baseline,
            scratch_database(server, "compare", template=synced) as compared,
            scratch_database(server, "pinned", template=synced) as pinned_database,
        ):
            other = None
            if options.compare_source is not None:
                other = await _compared_sync(options, sandbox, compared.url)
            first, again, rows, written = await _first_and_again(
                options, sandbox, synced.url, "", None
            )
            pinned = None
            if options.pin_cpus is not None:
                pinned = await _first_and_again(
                    options, sandbox, pinned_database.url, "pinned", options.pin_cpus
                )
            connection = await connect(synced.url)
            try:
                loads = await copy_baseline(connection, baseline.url, rows)
                settings = await postgres_settings(connection)
            finally:
                await connection.close()
    figures = _figures(options, sandbox, first, again, rows, written, loads, settings)
    if pinned is not None:
        figures |= _pinned_figures(options, figures, *pinned)
    if other is not None:
        copy_rate = figures["p1_copy_rows_per_second"]
        figures["compared_source"] = str(options.compare_source)
        figures["compared_first_sync"] = asdict(other)
        figures["p1_ratio_compared"] = figures["rows_total"] / other.wall_seconds / copy_rate
    _print(options, figures, rows, written, loads)
    report.write_json(options.results_dir, "sync", options.size, figures)
    return figures


async def _first_and_again(
    options: BenchOptions, sandbox: Sandbox, url: str, label: str, cpus: frozenset[int] | None
) -> tuple[SyncRun, SyncRun, dict[str, int], dict[str, dict[str, int]]]:
    """A cold sync into the empty database at `url`, then the same sync again: both runs,
    the live rows after the first and what the second wrote."""
    connection = await connect(url)
    try:
        env = worker_environment(url, options.redis_url, sandbox)
        suffix = f"-{label}" if label else ""
        log = options.log_dir / f"sync-first{suffix}-{options.size}.log"
        first = await run_sync(connection, sandbox, env, log, options.timeout, cpus=cpus)
        rows = await row_counts(connection)
        mark = await WriteMark.take(connection)
        log = options.log_dir / f"sync-again{suffix}-{options.size}.log"
        again = await run_sync(connection, sandbox, env, log, options.timeout, cpus=cpus)
        written = await mark.written_since(connection)
    finally:
        await connection.close()
    return first, again, rows, written


def _pinned_figures(
    options: BenchOptions,
    figures: dict[str, Any],
    first: SyncRun,
    again: SyncRun,
    rows: dict[str, int],
    written: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The pinned runs' figures, against the COPY baseline of the unpinned ones."""
    assert options.pin_cpus is not None
    total_rows = sum(rows.values())
    return {
        "pinned_cpus": sorted(options.pin_cpus),
        "pinned_first_sync": asdict(first),
        "pinned_resync": asdict(again),
        "pinned_rows_total": total_rows,
        "p1_ratio_pinned": total_rows / first.wall_seconds / figures["p1_copy_rows_per_second"],
        "p2_resync_share_pinned": again.wall_seconds / first.wall_seconds,
        "p2_rows_written_pinned": sum(
            w["new_row_versions"] + w["tuples_written"] for w in written.values()
        ),
        "p3_worker_peak_rss_pinned": max(first.worker_peak_rss, again.worker_peak_rss),
    }


async def _compared_sync(options: BenchOptions, sandbox: Sandbox, url: str) -> SyncRun:
    """A cold sync by the other checkout's code into its own empty database."""
    connection = await connect(url)
    try:
        env = worker_environment(url, options.redis_url, sandbox)
        log = options.log_dir / f"sync-compared-{options.size}.log"
        return await run_sync(
            connection, sandbox, env, log, options.timeout, source=options.compare_source
        )
    finally:
        await connection.close()


async def postgres_settings(connection: asyncpg.Connection) -> dict[str, str]:
    """The server settings that weigh most on bulk loads, for the record."""
    rows = await connection.fetch(
        "SELECT name, setting || COALESCE(' ' || unit, '') AS value FROM pg_settings"
        " WHERE name = ANY($1::text[])",
        list(RECORDED_SETTINGS),
    )
    return {row["name"]: row["value"] for row in rows}


def _figures(
    options: BenchOptions,
    sandbox: Sandbox,
    first: SyncRun,
    again: SyncRun,
    rows: dict[str, int],
    written: dict[str, dict[str, int]],
    loads: list[TableLoad],
    settings: dict[str, str],
) -> dict[str, Any]:
    total_rows = sum(rows.values())
    copy_seconds = sum(load.seconds for load in loads)
    sync_rate = total_rows / first.wall_seconds
    copy_rate = total_rows / copy_seconds
    return {
        "sandbox_counts": sandbox.counts,
        "rows": rows,
        "rows_total": total_rows,
        "first_sync": asdict(first),
        "resync": asdict(again),
        "resync_written": written,
        "copy": [asdict(load) for load in loads],
        "p1_sync_rows_per_second": sync_rate,
        "p1_copy_rows_per_second": copy_rate,
        "p1_ratio": sync_rate / copy_rate,
        "p1_ratio_run_only": (total_rows / first.run_seconds) / copy_rate,
        "p2_resync_share": again.wall_seconds / first.wall_seconds,
        "p2_resync_share_run_only": again.run_seconds / first.run_seconds,
        "p2_rows_written": sum(w["new_row_versions"] for w in written.values()),
        "p2_tuples_written": sum(w["tuples_written"] for w in written.values()),
        "p3_worker_peak_rss": max(first.worker_peak_rss, again.worker_peak_rss),
        "p3_worker_peak_rss_by_size": _rss_by_size(options, first, again),
        "p3_worker_rss_over_first_sync": {
            f"{share:.0%}": first.rss_at(share) for share in (0.25, 0.5, 0.75, 1.0)
        },
        "postgres_settings": settings,
    }


def _rss_by_size(options: BenchOptions, first: SyncRun, again: SyncRun) -> dict[str, int]:
    """This run's worker peak RSS beside those saved by earlier runs at other sizes."""
    by_size: dict[str, int] = {}
    for size in SIZES:
        if size == options.size:
            by_size[size] = max(first.worker_peak_rss, again.worker_peak_rss)
        elif (earlier := report.read_json(options.results_dir, "sync", size)) is not None:
            by_size[size] = int(earlier["p3_worker_peak_rss"])
    return by_size


def _print(
    options: BenchOptions,
    figures: dict[str, Any],
    rows: dict[str, int],
    written: dict[str, dict[str, int]],
    loads: list[TableLoad],
) -> None:
    first, again = figures["first_sync"], figures["resync"]
    rss = figures["p3_worker_peak_rss"]
    by_size = figures["p3_worker_peak_rss_by_size"]
    m = report
    summary = [
        ["first sync: wall (process)", m.seconds(first["wall_seconds"]), "", ""],
        ["first sync: run (sync_runs)", m.seconds(first["run_seconds"]), "", ""],
        ["rows in live tables", m.count(figures["rows_total"]), "", ""],
        ["sync rows/s (wall)", m.rate(figures["p1_sync_rows_per_second"]), "", ""],
        ["plain COPY of the same rows", m.seconds(sum(x.seconds for x in loads)), "", ""],
        ["COPY rows/s", m.rate(figures["p1_copy_rows_per_second"]), "", ""],
        *_goal_rows(figures),
        *_compared_rows(figures),
        ["re-sync: wall (process)", m.seconds(again["wall_seconds"]), "", ""],
        ["re-sync: run (sync_runs)", m.seconds(again["run_seconds"]), "", ""],
        ["worker CPU first / re-sync",
         f"{m.seconds(first['worker_cpu_seconds'])} / {m.seconds(again['worker_cpu_seconds'])}",
         "", ""],
        ["sandbox CPU first / re-sync",
         f"{m.seconds(first['sandbox_cpu_seconds'])} / {m.seconds(again['sandbox_cpu_seconds'])}",
         "", ""],
        ["Clever requests", str(first["clever_requests"]), "", ""],
        ["P3 worker peak RSS", m.megabytes(rss), f"<= {m.megabytes(MAX_WORKER_RSS)}",
         m.verdict(rss <= MAX_WORKER_RSS)],
        ["P3 worker RSS at 25/50/75/100% of first sync",
         " / ".join(m.megabytes(v) for v in figures["p3_worker_rss_over_first_sync"].values()),
         "", ""],
        *_growth_rows(options.size, by_size),
        *_pinned_rows(figures),
    ]  # fmt: skip
    m.print_table(
        f"sync: size-{options.size} district, sandbox at zero latency",
        ["figure", "value", "goal", "verdict"],
        summary,
    )
    by_table = {load.table: load for load in loads}
    m.print_table(
        "per table",
        ["table", "rows", "re-sync row versions", "re-sync tuples", "COPY", "COPY rows/s"],
        [
            [
                table,
                m.count(rows[table]),
                m.count(written[table]["new_row_versions"]),
                m.count(written[table]["tuples_written"]),
                m.seconds(by_table[table].seconds),
                m.rate(rows[table] / by_table[table].seconds if by_table[table].seconds else 0),
            ]
            for table in LIVE_TABLES
        ],
    )


def _compared_rows(figures: dict[str, Any]) -> list[list[str]]:
    if "p1_ratio_compared" not in figures:
        return []
    other = figures["compared_first_sync"]
    return [
        [
            f"cold sync by {figures['compared_source']}",
            report.seconds(other["wall_seconds"]),
            "",
            "",
        ],
        ["P1 sync/COPY by that code (wall)", report.ratio(figures["p1_ratio_compared"]), "", ""],
    ]


def _goal_rows(figures: dict[str, Any]) -> list[list[str]]:
    m = report
    ratio, share = figures["p1_ratio"], figures["p2_resync_share"]
    written = figures["p2_rows_written"] + figures["p2_tuples_written"]
    return [
        ["P1 sync/COPY rows/s (wall)", m.ratio(ratio), f">= {MIN_COPY_RATIO:.2f}x",
         m.verdict(ratio >= MIN_COPY_RATIO)],
        ["P1 sync/COPY rows/s (run only)", m.ratio(figures["p1_ratio_run_only"]), "", ""],
        ["P2 re-sync share of first (wall)", m.ratio(share), f"<= {MAX_RESYNC_SHARE:.2f}x",
         m.verdict(share <= MAX_RESYNC_SHARE)],
        ["P2 re-sync share (run only)", m.ratio(figures["p2_resync_share_run_only"]), "", ""],
        ["P2 rows written by re-sync",
         f"{figures['p2_rows_written']} versions, {figures['p2_tuples_written']} tuples",
         "0", m.verdict(written == 0)],
    ]  # fmt: skip


def _pinned_rows(figures: dict[str, Any]) -> list[list[str]]:
    """The same figures with the sync process pinned to one core."""
    if "p1_ratio_pinned" not in figures:
        return []
    m = report
    cpus = ",".join(map(str, figures["pinned_cpus"]))
    first, again = figures["pinned_first_sync"], figures["pinned_resync"]
    ratio, share = figures["p1_ratio_pinned"], figures["p2_resync_share_pinned"]
    rss, written = figures["p3_worker_peak_rss_pinned"], figures["p2_rows_written_pinned"]
    return [
        [f"pinned (taskset -c {cpus}): first sync / re-sync wall",
         f"{m.seconds(first['wall_seconds'])} / {m.seconds(again['wall_seconds'])}", "", ""],
        ["P1 sync/COPY rows/s, pinned", m.ratio(ratio), f">= {MIN_COPY_RATIO:.2f}x",
         m.verdict(ratio >= MIN_COPY_RATIO)],
        ["P2 re-sync share of first, pinned", m.ratio(share), f"<= {MAX_RESYNC_SHARE:.2f}x",
         m.verdict(share <= MAX_RESYNC_SHARE)],
        ["P2 rows + tuples written by re-sync, pinned", str(written), "0",
         m.verdict(written == 0)],
        ["P3 worker peak RSS, pinned", m.megabytes(rss), f"<= {m.megabytes(MAX_WORKER_RSS)}",
         m.verdict(rss <= MAX_WORKER_RSS)],
    ]  # fmt: skip


def _growth_rows(size: str, by_size: dict[str, int]) -> list[list[str]]:
    """Peak RSS by size, judged against `S`'s (the smallest size a district's pages fill)."""
    m = report
    listed = ", ".join(f"{name} {m.megabytes(value)}" for name, value in by_size.items())
    rows = [["P3 worker peak RSS by size", listed, "flat", ""]]
    if size != "S" and "S" in by_size and SIZES.index(size) > SIZES.index("S"):
        growth = by_size[size] / by_size["S"]
        rows.append(
            [f"P3 {size} / S", m.ratio(growth), f"<= {1 + RSS_GROWTH_TOLERANCE:.2f}x",
             m.verdict(growth <= 1 + RSS_GROWTH_TOLERANCE)]
        )  # fmt: skip
    return rows
