"""Scenario `history`: what writing the change log costs a sync, and how big it grows.

Two fresh databases sync the same sandbox district with the same code: one as it runs in
production, one with the change log's triggers disabled. Both take a cold full sync; then
5 % of the district's users and sections change in the sandbox, and both take a full
re-sync. The figures are each sync's time with the log over its time without, and the
log's rows and bytes per run.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import asyncpg
import httpx

from app.mirror.queries.changes import ENTITIES
from bench import report
from bench.databases import connect, scratch_database
from bench.options import BenchOptions
from bench.processes import Sandbox
from bench.processes import sandbox_process as start_sandbox
from bench.sync import SyncRun, run_sync, worker_environment

CHANGED_SHARE = 0.05


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its table, save its figures."""
    with start_sandbox(
        options.size, log_dir=options.log_dir, startup_timeout=options.timeout
    ) as sandbox:
        async with (
            scratch_database(options.server_url, "logged") as logged,
            scratch_database(options.server_url, "unlogged") as unlogged,
        ):
            with_log = await connect(logged.url)
            without_log = await connect(unlogged.url)
            try:
                for table in ENTITIES:
                    await without_log.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                envs = (
                    worker_environment(logged.url, options.redis_url, sandbox),
                    worker_environment(unlogged.url, options.redis_url, sandbox),
                )
                first = await _both(options, sandbox, (with_log, without_log), envs, "first")
                first_log = await _log_size(with_log)
                changed = await change_share(sandbox, with_log)
                again = await _both(options, sandbox, (with_log, without_log), envs, "changed")
                total_log = await _log_size(with_log)
            finally:
                await with_log.close()
                await without_log.close()
    figures = {
        "size": options.size,
        "first_sync": {"with_log": asdict(first[0]), "without_log": asdict(first[1])},
        "changed_resync": {"with_log": asdict(again[0]), "without_log": asdict(again[1])},
        "records_changed": changed,
        "first_sync_cost": first[0].wall_seconds / first[1].wall_seconds,
        "first_sync_cost_run_only": first[0].run_seconds / first[1].run_seconds,
        "changed_resync_cost": again[0].wall_seconds / again[1].wall_seconds,
        "changed_resync_cost_run_only": again[0].run_seconds / again[1].run_seconds,
        "log_after_first": first_log,
        "log_of_changed_resync": {
            "rows": total_log["rows"] - first_log["rows"],
            "bytes": total_log["bytes"] - first_log["bytes"],
        },
    }
    _print(figures)
    report.write_json(options.results_dir, "history", options.size, figures)
    return figures


async def _both(
    options: BenchOptions,
    sandbox: Sandbox,
    connections: tuple[asyncpg.Connection, asyncpg.Connection],
    envs: tuple[dict[str, str], dict[str, str]],
    label: str,
) -> tuple[SyncRun, SyncRun]:
    runs = []
    for connection, env, name in zip(connections, envs, ("with", "without"), strict=True):
        log = options.log_dir / f"history-{label}-{name}-log-{options.size}.log"
        runs.append(await run_sync(connection, sandbox, env, log, options.timeout))
    return runs[0], runs[1]


async def _log_size(connection: asyncpg.Connection) -> dict[str, int]:
    row = await connection.fetchrow(
        "SELECT count(*) AS rows, pg_total_relation_size('changes') AS bytes FROM changes"
    )
    assert row is not None
    return {"rows": int(row["rows"]), "bytes": int(row["bytes"])}


async def change_share(sandbox: Sandbox, connection: asyncpg.Connection) -> int:
    """Change CHANGED_SHARE of the users (a last name) and of the sections (a name, and a
    student less) in the sandbox; how many records changed."""
    users = [row["id"] for row in await connection.fetch("SELECT id FROM users ORDER BY id")]
    sections = await connection.fetch(
        "SELECT s.id, (SELECT min(e.student_id) FROM enrollments e WHERE e.section_id = s.id"
        " AND e.ended_at IS NULL) AS student FROM sections s ORDER BY s.id"
    )
    step = round(1 / CHANGED_SHARE)
    changes: list[dict[str, Any]] = [
        {"op": "update", "id": user_id, "set": {"name": {"last": "Changed"}}}
        for user_id in users[::step]
    ]
    for section in sections[::step]:
        changes.append({"op": "update", "id": section["id"], "set": {"name": "Changed section"}})
        if section["student"] is not None:
            changes.append(
                {
                    "op": "remove_students",
                    "section": section["id"],
                    "students": [section["student"]],
                }
            )
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=600) as client:
        response = await client.post(
            f"/sandbox/districts/{sandbox.district_id}/changes",
            json={"changes": changes},
            headers={"Authorization": f"Bearer {sandbox.token}"},
        )
        response.raise_for_status()
    return len(users[::step]) + len(sections[::step])


def _print(figures: dict[str, Any]) -> None:
    m = report
    first, again = figures["first_sync"], figures["changed_resync"]
    first_log, changed_log = figures["log_after_first"], figures["log_of_changed_resync"]
    m.print_table(
        f"history: size-{figures['size']} district, change log on vs off",
        ["figure", "with the log", "without", "ratio"],
        [
            ["cold full sync (wall)", m.seconds(first["with_log"]["wall_seconds"]),
             m.seconds(first["without_log"]["wall_seconds"]), m.ratio(figures["first_sync_cost"])],
            ["cold full sync (run)", m.seconds(first["with_log"]["run_seconds"]),
             m.seconds(first["without_log"]["run_seconds"]),
             m.ratio(figures["first_sync_cost_run_only"])],
            [f"re-sync, {figures['records_changed']} records changed (wall)",
             m.seconds(again["with_log"]["wall_seconds"]),
             m.seconds(again["without_log"]["wall_seconds"]),
             m.ratio(figures["changed_resync_cost"])],
            ["re-sync (run)", m.seconds(again["with_log"]["run_seconds"]),
             m.seconds(again["without_log"]["run_seconds"]),
             m.ratio(figures["changed_resync_cost_run_only"])],
            ["change log after the cold sync", f"{m.count(first_log['rows'])} rows",
             m.megabytes(first_log["bytes"]), ""],
            ["change log of the re-sync", f"{m.count(changed_log['rows'])} rows",
             m.megabytes(changed_log["bytes"]), ""],
        ],
    )  # fmt: skip
