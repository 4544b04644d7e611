"""Each district's sync lock: one sync of a district at a time, across processes and machines.

A Postgres session advisory lock, keyed by the district, held by one pooled connection for a
whole run. It dies with its connection, so a killed worker never leaves a district locked,
and "running but unlocked" means the process running it is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg


def lock_key(district_id: str) -> str:
    return f"roster:sync:{district_id}"


def held_sql(key_sql: str) -> str:
    """A SQL condition: some session holds the advisory lock of the key `key_sql` (a SQL
    text expression). Read from `pg_locks` (a bigint key shows as classid:objid) rather than
    by trying the lock: a probe holding it even for an instant would make a run starting
    then coalesce."""
    return f"""
        EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND ((classid::bigint << 32) | objid::bigint) = hashtextextended({key_sql}, 0)
        )
    """


async def is_district_locked(connection: asyncpg.Connection, district_id: str) -> bool:
    """Whether some session holds the district's sync lock (a sync is running)."""
    held: bool = await connection.fetchval(f"SELECT {held_sql('$1')}", lock_key(district_id))
    return held


@asynccontextmanager
async def district_lock(pool: asyncpg.Pool, district_id: str) -> AsyncIterator[bool]:
    """Hold the district's sync lock for the block; yields False if another run holds it."""
    async with pool.acquire() as connection:
        key = lock_key(district_id)
        acquired = bool(
            await connection.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
        )
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    await connection.execute(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key
                    )
                except Exception:
                    # A connection the server terminated took the lock with it; any other
                    # that cannot unlock is ended, so it never goes back to the pool locked.
                    with suppress(Exception):
                        connection.terminate()
