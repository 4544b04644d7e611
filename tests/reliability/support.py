"""Shared pieces of the reliability suite: mirror fingerprints, cloned databases, outcomes.

A mirror's fingerprint is an ordered hash of each live table's content (records by id and
content hash and whether active; links by their keys, values and whether active). Two
mirrors with equal fingerprints show the same roster; a fault must leave either the
fingerprint before the run or the one an uninterrupted run gives, never a third.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from app import migrations
from app.settings import to_asyncpg_url
from tests.conftest import create_database, drop_database, with_database
from tests.support.mirror import create_mirror_pool

REPORT_DIR = Path(__file__).resolve().parents[2] / "build" / "reliability"

_TABLE_CONTENT = {
    "districts": "id, content_hash, deleted_at IS NULL",
    "schools": "id, content_hash, deleted_at IS NULL",
    "terms": "id, content_hash, deleted_at IS NULL",
    "courses": "id, content_hash, deleted_at IS NULL",
    "users": "id, content_hash, deleted_at IS NULL",
    "sections": "id, content_hash, deleted_at IS NULL",
    "user_schools": "user_id, role, school_id, is_primary, deleted_at IS NULL",
    "contact_relationships": "contact_id, student_id, relationship, type, deleted_at IS NULL",
    "section_teachers": "section_id, teacher_id, position, is_primary, deleted_at IS NULL",
    "enrollments": "section_id, student_id, ended_at IS NULL",
}


async def fingerprint(pool: asyncpg.Pool) -> dict[str, str]:
    """md5 of each live table's content in a fixed order."""
    hashes = {}
    for table, columns in _TABLE_CONTENT.items():
        hashes[table] = await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(row::text, '|' ORDER BY row::text), ''))"
            f" FROM (SELECT ROW({columns}) AS row FROM {table}) rows"
        )
    return hashes


async def running_runs(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM sync_runs WHERE status = 'running'")
    return count


async def leftover_staging(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'roster_staging'"
    )
    return count


@contextmanager
def migrated_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database migrated to head, for the block; yields its name. Call it outside
    the event loop (the migrations run their own)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(server_url, name))
    try:
        migrations.upgrade(url)
        yield name
    finally:
        asyncio.run(drop_database(server_url, name))


@asynccontextmanager
async def cloned_database(server_url: str, template: str) -> AsyncIterator[str]:
    """A database copied from `template` (which must have no sessions) for the block."""
    name = f"roster_rel_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(to_asyncpg_url(with_database(server_url, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(to_asyncpg_url(with_database(server_url, "postgres")))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def mirror_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_mirror_pool(url)
    try:
        yield pool
    finally:
        await pool.close()


def write_report(name: str, rows: list[dict[str, Any]], header: list[str]) -> Path:
    """A Markdown table of `rows` (and the rows as JSON) under build/reliability/."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key in header) + " |")
    path = REPORT_DIR / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    (REPORT_DIR / f"{name}.json").write_text(json.dumps(rows, indent=1, default=str))
    return path
