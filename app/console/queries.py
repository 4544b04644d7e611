"""What the console's pages show, read from the mirror and the run log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from app.api.sync_schemas import SYNC_RUN_COLUMNS
from app.mirror.queries.shapes import district_connection, district_paused

# Runs shown on a district's page, newest first.
HISTORY_RUNS = 30


async def districts(
    connection: asyncpg.Connection, district_ids: list[str] | None
) -> list[asyncpg.Record]:
    """Every district the key may see (None: all), with its last full and incremental run."""
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""
        SELECT d.id, d.name, {district_connection("d")} AS connection,
               {district_paused("d")} AS paused,
               (SELECT max(r.finished_at) FROM sync_runs r
                WHERE r.district_id = d.id AND r.status = 'succeeded') AS fresh_at,
               full_run.id AS full_id, full_run.status AS full_status,
               full_run.finished_at AS full_finished_at, full_run.counts AS full_counts,
               inc.id AS incremental_id, inc.status AS incremental_status,
               inc.finished_at AS incremental_finished_at,
               (SELECT count(*) FROM users u
                WHERE u.district_id = d.id AND u.deleted_at IS NULL) AS users,
               (SELECT count(*) FROM sections s
                WHERE s.district_id = d.id AND s.deleted_at IS NULL) AS sections,
               (SELECT count(*) FROM data_warnings w
                WHERE w.district_id = d.id AND w.resolved_at IS NULL) AS warnings
        FROM districts d
        LEFT JOIN LATERAL (
            SELECT r.* FROM sync_runs r WHERE r.district_id = d.id AND r.mode = 'full'
            ORDER BY r.created_at DESC LIMIT 1
        ) full_run ON true
        LEFT JOIN LATERAL (
            SELECT r.* FROM sync_runs r WHERE r.district_id = d.id AND r.mode = 'incremental'
            ORDER BY r.created_at DESC LIMIT 1
        ) inc ON true
        WHERE $1::text[] IS NULL OR d.id = ANY($1::text[])
        ORDER BY d.name, d.id
        """,
        district_ids,
    )
    return rows


async def run(connection: asyncpg.Connection, run_id: uuid.UUID) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE id = $1", run_id
    )
    return record


async def runs(connection: asyncpg.Connection, district_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE district_id = $1"
        " ORDER BY created_at DESC LIMIT $2",
        district_id,
        HISTORY_RUNS,
    )
    return rows


async def events_cursor(
    connection: asyncpg.Connection, district_id: str
) -> tuple[str | None, datetime | None]:
    """The newest event the mirror applied, and when the cursor last moved."""
    record = await connection.fetchrow(
        "SELECT events_cursor, events_cursor_at FROM district_sync_state WHERE district_id = $1",
        district_id,
    )
    return (record["events_cursor"], record["events_cursor_at"]) if record else (None, None)


def changed(counts: dict[str, Any] | None) -> int:
    """Records a run created, updated or deactivated, over every table."""
    return sum(
        int(table.get(kind, 0))
        for name, table in (counts or {}).items()
        if isinstance(table, dict) and name not in ("events", "data_warnings")
        for kind in ("created", "updated", "deactivated")
    )
