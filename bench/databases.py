"""Scratch databases for the benchmarks, and what the live tables hold and had written.

Every scratch database is named `roster_bench_<label>_<random>`, migrated with the
project's Alembic migrations (the same schema and indexes as production) and dropped when
its block ends, whatever happened in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app import migrations
from app.mirror.merge import LIVE_TABLES
from app.settings import to_asyncpg_url

__all__ = ["LIVE_TABLES", "ScratchDatabase", "WriteMark", "scratch_database"]

# Transaction ids are 32 bits in a row's xmin; 64 bits from pg_current_xact_id().
_XID_MODULO = 2**32
# A backend flushes its table statistics at most once a second (PG 15) and when it exits.
STATS_FLUSH_SECONDS = 1.5


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str


@asynccontextmanager
async def scratch_database(
    server_url: str, label: str, *, template: ScratchDatabase | None = None
) -> AsyncIterator[ScratchDatabase]:
    """A new database, dropped after the block.

    Migrated to head, or a copy of `template` (which must have no open connection): the
    same schema and indexes even if the migrations change on disk in the meantime.
    """
    name = f"roster_bench_{label}_{uuid.uuid4().hex[:8]}"
    clone = f' TEMPLATE "{template.name}"' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{clone}')
    database = ScratchDatabase(name, with_database(server_url, name))
    try:
        if template is None:
            # Alembic runs its own event loop, so it gets a thread of its own.
            await asyncio.to_thread(migrations.upgrade, database.url)
        yield database
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(server_url: str, statement: str) -> None:
    admin = await asyncpg.connect(to_asyncpg_url(server_url))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(to_asyncpg_url(url))


async def checkpoint(connection: asyncpg.Connection) -> None:
    """Flush dirty buffers now, so a timed step does not pay for the previous one's writes."""
    await connection.execute("CHECKPOINT")


async def row_counts(
    connection: asyncpg.Connection, tables: Sequence[str] = LIVE_TABLES
) -> dict[str, int]:
    """Rows in each table."""
    return {table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


@dataclass(frozen=True)
class WriteMark:
    """A point in time to find the rows written after it.

    Two independent witnesses: rows whose `xmin` (the transaction that wrote this version)
    is newer than the mark, which catches every insert and update; and the cumulative
    statistics' inserted/updated/deleted tuple counters, which also catch deletes.
    """

    xid: int
    counters: dict[str, int]

    @classmethod
    async def take(
        cls, connection: asyncpg.Connection, tables: Sequence[str] = LIVE_TABLES
    ) -> WriteMark:
        xid = int(await connection.fetchval("SELECT pg_current_xact_id()::text::bigint"))
        return cls(xid=xid % _XID_MODULO, counters=await _tuple_counters(connection, tables))

    async def written_since(
        self, connection: asyncpg.Connection, tables: Sequence[str] = LIVE_TABLES
    ) -> dict[str, dict[str, int]]:
        """Per table: row versions newer than the mark, and tuples counted as written."""
        await asyncio.sleep(STATS_FLUSH_SECONDS)
        counters = await _tuple_counters(connection, tables)
        written: dict[str, dict[str, int]] = {}
        for table in tables:
            newer = await connection.fetchval(
                f"SELECT count(*) FROM {table} WHERE xmin::text::bigint > $1", self.xid
            )
            written[table] = {
                "new_row_versions": int(newer),
                "tuples_written": counters[table] - self.counters[table],
            }
        return written


async def _tuple_counters(connection: asyncpg.Connection, tables: Sequence[str]) -> dict[str, int]:
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    rows = await connection.fetch(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS written"
        " FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = ANY($1::text[])",
        list(tables),
    )
    found = {row["relname"]: int(row["written"]) for row in rows}
    return {table: found.get(table, 0) for table in tables}
