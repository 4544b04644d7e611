"""Where each district is in Clever's event feed: the only writer of `district_sync_state`.

A full sync notes Clever's newest event before it reads anything and, in the transaction
that applies it, makes that the district's cursor. An incremental sync reads the events
after the cursor and moves it batch by batch, in the run's one transaction.
"""

from __future__ import annotations

import uuid

import asyncpg


async def events_cursor(connection: asyncpg.Connection, district_id: str) -> str | None:
    """The id of the newest event applied to the district (None: none recorded)."""
    cursor: str | None = await connection.fetchval(
        "SELECT events_cursor FROM district_sync_state WHERE district_id = $1", district_id
    )
    return cursor


async def record_full_sync(
    connection: asyncpg.Connection, district_id: str, run_id: uuid.UUID
) -> None:
    """Incremental syncs continue from the newest event Clever had when run `run_id` (a
    full sync being applied) began; a district without events keeps no cursor."""
    await connection.execute(
        """
        INSERT INTO district_sync_state (district_id, events_cursor, events_cursor_at,
                                         last_full_sync_at, last_full_sync_run_id)
        SELECT $1, r.events_cursor, CASE WHEN r.events_cursor IS NULL THEN NULL ELSE now() END,
               now(), r.id
        FROM sync_runs r WHERE r.id = $2
        ON CONFLICT (district_id) DO UPDATE SET
            events_cursor = EXCLUDED.events_cursor,
            events_cursor_at = EXCLUDED.events_cursor_at,
            last_full_sync_at = EXCLUDED.last_full_sync_at,
            last_full_sync_run_id = EXCLUDED.last_full_sync_run_id,
            updated_at = now()
        """,
        district_id,
        run_id,
    )


async def advance(connection: asyncpg.Connection, district_id: str, cursor: str) -> None:
    """Move the district's cursor to `cursor`, in the transaction applying the events up to
    it."""
    await connection.execute(
        "UPDATE district_sync_state SET events_cursor = $2, events_cursor_at = now(),"
        " last_incremental_sync_at = now(), updated_at = now() WHERE district_id = $1",
        district_id,
        cursor,
    )
