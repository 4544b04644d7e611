"""Scenario `events`: how fast an incremental sync applies Clever's events, and what an idle
poll costs.

A district of `--size` is mirrored by a full sync from the sandbox (its own process), then a
change set of `EVENTS` updates (a student's middle name each, one event each) is applied in the
sandbox, and `roster sync --mode incremental` applies those events. Printed: events applied
per second (run time and process wall time), then a second incremental run with nothing new:
its Clever requests, wall time and the mirrored rows it wrote (goal: 1 request, 0 rows).
"""

from __future__ import annotations

from typing import Any

import httpx

from bench import report
from bench.databases import WriteMark, connect, scratch_database
from bench.options import BenchOptions
from bench.processes import SANDBOX_ADMIN_SECRET
from bench.processes import sandbox_process as start_sandbox
from bench.sync import run_sync, worker_environment

EVENTS = 100_000
# Changes per request to the sandbox's change API.
CHUNK = 10_000
MIN_EVENTS_PER_SECOND = 20_000


def change_students(base_url: str, district_id: str, student_ids: list[str]) -> int:
    """Update every student's middle name in the sandbox; returns the events recorded."""
    recorded = 0
    with httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {SANDBOX_ADMIN_SECRET}"},
        timeout=600,
    ) as client:
        for start in range(0, len(student_ids), CHUNK):
            changes = [
                {"op": "update", "id": student_id, "set": {"name": {"middle": "Q"}}}
                for student_id in student_ids[start : start + CHUNK]
            ]
            response = client.post(
                f"/sandbox/districts/{district_id}/changes", json={"changes": changes}
            )
            response.raise_for_status()
            recorded += int(response.json()["events"]["count"])
    return recorded


async def run(options: BenchOptions) -> dict[str, Any]:
    log_dir = options.log_dir
    with start_sandbox(options.size, log_dir=log_dir, startup_timeout=options.timeout) as sandbox:
        async with scratch_database(options.server_url, "events") as database:
            connection = await connect(database.url)
            try:
                env = worker_environment(database.url, options.redis_url, sandbox)
                log = log_dir / f"events-{options.size}.log"
                first = await run_sync(connection, sandbox, env, log, options.timeout)
                students = [
                    row[0]
                    for row in await connection.fetch(
                        "SELECT id FROM users WHERE 'student' = ANY(roles) ORDER BY id LIMIT $1",
                        EVENTS,
                    )
                ]
                recorded = change_students(sandbox.base_url, sandbox.district_id, students)
                applied = await run_sync(
                    connection, sandbox, env, log, options.timeout, mode="incremental"
                )
                mark = await WriteMark.take(connection)
                idle = await run_sync(
                    connection, sandbox, env, log, options.timeout, mode="incremental"
                )
                written = await mark.written_since(connection)
            finally:
                await connection.close()
    events = int(applied.counts.get("events", {}).get("applied", 0))
    updated = int(applied.counts.get("users", {}).get("updated", 0))
    figures: dict[str, Any] = {
        "first_sync_seconds": first.wall_seconds,
        "events_recorded": recorded,
        "events_applied": events,
        "users_updated": updated,
        "incremental_run_seconds": applied.run_seconds,
        "incremental_wall_seconds": applied.wall_seconds,
        "events_per_second_run": events / applied.run_seconds,
        "events_per_second_wall": events / applied.wall_seconds,
        "incremental_worker_peak_rss": applied.worker_peak_rss,
        "idle_clever_requests": idle.clever_requests,
        "idle_wall_seconds": idle.wall_seconds,
        "idle_run_seconds": idle.run_seconds,
        "idle_rows_written": sum(table["new_row_versions"] for table in written.values()),
    }
    rate = figures["events_per_second_run"]
    verdict = "ok" if rate >= MIN_EVENTS_PER_SECOND else "MISSED"
    print(f"events: size-{options.size} district, {recorded:,} events recorded by the sandbox")
    print(
        f"  incremental run: {events:,} events applied ({updated:,} users updated) in"
        f" {applied.run_seconds:.1f} s run / {applied.wall_seconds:.1f} s wall:"
        f" {rate:,.0f} events/s (run), {figures['events_per_second_wall']:,.0f}/s (wall);"
        f" goal >= {MIN_EVENTS_PER_SECOND:,}/s: {verdict}"
    )
    print(
        f"  idle poll: {idle.clever_requests} Clever request(s), {idle.wall_seconds:.2f} s wall,"
        f" {idle.run_seconds:.2f} s run, {figures['idle_rows_written']} mirrored rows written"
    )
    report.write_json(options.results_dir, "events", options.size, figures)
    return figures
