"""Helpers for tests whose syncs commit: a pool on the test database, and emptying it after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.mirror.models import metadata
from app.mirror.pg import init_connection
from app.settings import to_asyncpg_url

# Every table the migrations create (the models' metadata is their source), emptied between
# tests whose syncs commit.
MIRROR_TABLES = ", ".join(sorted(metadata.tables))


async def create_mirror_pool(database_url: str) -> asyncpg.Pool:
    """A pool on the test database with the codecs the sync needs (jsonb from bytes)."""
    pool = await asyncpg.create_pool(
        to_asyncpg_url(database_url), min_size=1, max_size=6, init=init_connection
    )
    assert pool is not None
    return pool


async def staging_tables(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'roster_staging'")
    return sorted(row["tablename"] for row in rows)


async def empty_mirror(pool: asyncpg.Pool) -> None:
    """Truncate every mirror table and drop every staging table (syncs commit)."""
    await pool.execute(f"TRUNCATE {MIRROR_TABLES}")
    for name in await staging_tables(pool):
        await pool.execute(f'DROP TABLE IF EXISTS roster_staging."{name}"')


@asynccontextmanager
async def emptied_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool for the block; the mirror is emptied and the pool closed when it ends."""
    pool = await create_mirror_pool(database_url)
    try:
        yield pool
    finally:
        try:
            await empty_mirror(pool)
        finally:
            await pool.close()
