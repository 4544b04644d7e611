"""Sync run records: created when a sync is asked for, updated as it goes.

The only module that writes `sync_runs`. A run's success is recorded by its caller inside
the transaction that applies the merge it describes (`finish_run` on that connection), so
an applied run never reads as interrupted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import asyncpg


class RunMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    CLI = "cli"
    WEBHOOK = "webhook"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HELD = "held"
    REJECTED = "rejected"
    COALESCED = "coalesced"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINAL_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.REJECTED,
    RunStatus.COALESCED,
)


async def create_run(
    connection: asyncpg.Connection,
    district_id: str,
    mode: RunMode,
    trigger: RunTrigger,
    status: RunStatus = RunStatus.QUEUED,
) -> uuid.UUID:
    run_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO sync_runs (id, district_id, mode, trigger, status)"
        " VALUES ($1, $2, $3, $4, $5)",
        run_id,
        district_id,
        mode.value,
        trigger.value,
        status.value,
    )
    return run_id


async def start_run(connection: asyncpg.Connection, run_id: uuid.UUID) -> bool:
    """Mark the run running; False when it has ended already (failed by the reaper while
    its job waited, say), and must not run."""
    result: str = await connection.execute(
        "UPDATE sync_runs SET status = 'running', started_at = now(), error = NULL"
        " WHERE id = $1 AND status IN ('queued', 'running')",
        run_id,
    )
    return result != "UPDATE 0"


async def record_progress(
    connection: asyncpg.Connection,
    run_id: uuid.UUID,
    progress: dict[str, Any],
    clever_requests: int,
) -> None:
    await connection.execute(
        "UPDATE sync_runs SET progress = $2, clever_requests = $3 WHERE id = $1",
        run_id,
        orjson.dumps(progress),
        clever_requests,
    )


async def finish_run(
    connection: asyncpg.Connection,
    run_id: uuid.UUID,
    status: RunStatus,
    *,
    counts: dict[str, Any] | None = None,
    warnings_count: int | None = None,
    clever_requests: int | None = None,
    clever_errors: dict[str, int] | None = None,
    error: str | None = None,
    held_reason: str | None = None,
    idle: bool = False,
) -> bool:
    """Record how a run ended (or that it is held: `finished_at` stays empty then), and add
    an ended run to its district's `sync_totals` and `clever_error_totals`.

    A run that has ended already keeps its end, and False is returned: a failure after a
    run's merge committed (dropping its staging, say) never turns an applied run into a
    failed one.
    """
    ended: int = await connection.fetchval(
        """
        WITH run AS (
            UPDATE sync_runs SET
                status = $2,
                -- The moment of this statement, not of the transaction's start: a full
                -- sync's merge runs in the transaction that records its end.
                finished_at = CASE WHEN $2 = 'held' THEN NULL ELSE clock_timestamp() END,
                counts = COALESCE($3, counts),
                warnings_count = COALESCE($4, warnings_count),
                clever_requests = COALESCE($5, clever_requests),
                clever_errors = COALESCE($10, clever_errors),
                error = $6,
                held_reason = COALESCE($7, held_reason),
                idle = $9
            WHERE id = $1 AND status <> ALL($8::text[])
            RETURNING district_id, mode, status, finished_at, clever_requests, clever_errors,
                      COALESCE((counts->'events'->>'applied')::bigint, 0) AS events_applied,
                      extract(epoch FROM finished_at - COALESCE(started_at, finished_at))
                          AS duration
        ), totals AS (
            INSERT INTO sync_totals AS t
            SELECT district_id, mode, status, 1, events_applied, clever_requests, duration,
                   finished_at, duration
            FROM run WHERE finished_at IS NOT NULL
            ON CONFLICT (district_id, mode, status) DO UPDATE SET
                runs = t.runs + 1,
                events_applied = t.events_applied + EXCLUDED.events_applied,
                clever_requests = t.clever_requests + EXCLUDED.clever_requests,
                duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds,
                last_finished_at = EXCLUDED.last_finished_at,
                last_duration_seconds = EXCLUDED.last_duration_seconds
        ), errors AS (
            INSERT INTO clever_error_totals AS e
            SELECT run.district_id, failed.key, failed.value::bigint
            FROM run, jsonb_each_text(run.clever_errors) AS failed
            WHERE run.finished_at IS NOT NULL
            ON CONFLICT (district_id, status) DO UPDATE
            SET responses = e.responses + EXCLUDED.responses
        )
        SELECT count(*) FROM run
        """,
        run_id,
        status.value,
        orjson.dumps(counts) if counts is not None else None,
        warnings_count,
        clever_requests,
        error,
        held_reason,
        [status.value for status in FINAL_STATUSES],
        idle,
        orjson.dumps(clever_errors) if clever_errors is not None else None,
    )
    return ended > 0


async def record_events_cursor(
    connection: asyncpg.Connection, run_id: uuid.UUID, cursor: str | None
) -> None:
    """Note Clever's newest event id as a full sync begins (None: events are off)."""
    await connection.execute(
        "UPDATE sync_runs SET events_cursor = $2 WHERE id = $1", run_id, cursor
    )


async def record_decision(
    connection: asyncpg.Connection, run_id: uuid.UUID, decided_by: str
) -> None:
    """Who approved or rejected a held run, and when."""
    await connection.execute(
        "UPDATE sync_runs SET decided_at = now(), decided_by = $2 WHERE id = $1",
        run_id,
        decided_by,
    )


async def supersede_held(connection: asyncpg.Connection, district_id: str) -> None:
    """A new full sync replaces the district's held run."""
    await connection.execute(
        "UPDATE sync_runs SET status = 'rejected', finished_at = now(),"
        " error = 'superseded by a newer sync' WHERE district_id = $1 AND status = 'held'",
        district_id,
    )


async def fall_back_to_full(connection: asyncpg.Connection, run_id: uuid.UUID, reason: str) -> None:
    """Record that an incremental run goes on as a full sync, and why."""
    await connection.execute(
        "UPDATE sync_runs SET mode = 'full', fallback_reason = $2 WHERE id = $1", run_id, reason
    )


async def last_success_at(connection: asyncpg.Connection, district_id: str) -> datetime | None:
    """When the district's newest successful sync (of either mode) finished."""
    finished: datetime | None = await connection.fetchval(
        "SELECT max(finished_at) FROM sync_runs WHERE district_id = $1 AND status = 'succeeded'",
        district_id,
    )
    return finished


async def due_for_poll(
    connection: asyncpg.Connection, district_ids: Sequence[str], interval_seconds: int
) -> list[str]:
    """The mirrored districts (of `district_ids`) whose newest run was created
    `interval_seconds` ago or more: the ones an events poll should sync. A district not
    mirrored yet gets its first sync when asked for, or from the full-sync schedule."""
    rows = await connection.fetch(
        """
        SELECT d.id FROM unnest($1::text[]) AS d(id)
        WHERE EXISTS (SELECT 1 FROM districts m WHERE m.id = d.id)
          AND NOT EXISTS (
            SELECT 1 FROM sync_runs r
            WHERE r.district_id = d.id
              AND r.created_at > now() - make_interval(secs => $2)
        )
        ORDER BY d.id
        """,
        list(district_ids),
        float(interval_seconds),
    )
    return [row["id"] for row in rows]


async def previous_records(connection: asyncpg.Connection, district_id: str) -> dict[str, int]:
    """Records per collection that the district's latest full run to read them all (one
    that succeeded or was held) read: what the next full run may expect."""
    progress = await connection.fetchval(
        "SELECT progress FROM sync_runs WHERE district_id = $1 AND mode = 'full'"
        " AND status IN ('succeeded', 'held') AND progress IS NOT NULL"
        " ORDER BY created_at DESC LIMIT 1",
        district_id,
    )
    return {name: read["records"] for name, read in (progress or {}).items()}


async def get_run(connection: asyncpg.Connection, run_id: uuid.UUID) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await connection.fetchrow(
        "SELECT * FROM sync_runs WHERE id = $1", run_id
    )
    return record


async def fail_interrupted_runs(
    connection: asyncpg.Connection, district_id: str, current: uuid.UUID
) -> int:
    """Mark runs of the district that were running when their process died as failed.

    Only called while holding the district's lock, so no other run can be alive.
    """
    result: str = await connection.execute(
        "UPDATE sync_runs SET status = 'failed', finished_at = now(),"
        " error = 'interrupted: the process running it stopped'"
        " WHERE district_id = $1 AND status = 'running' AND id <> $2",
        district_id,
        current,
    )
    return int(result.rsplit(" ", 1)[-1])
