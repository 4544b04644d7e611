"""The Alembic migrations build the schema the models describe, and can be undone."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from app import migrations
from app.settings import to_asyncpg_url
from tests.conftest import create_database, drop_database


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(to_asyncpg_url(url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


def test_upgrade_downgrade_upgrade_and_no_drift(server_database_url: str) -> None:
    name = f"roster_migrations_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(server_database_url, name))
    try:
        migrations.upgrade(url)
        tables = asyncio.run(_tables(url))
        assert {
            "districts",
            "district_sync_state",
            "schools",
            "users",
            "user_schools",
            "sections",
            "section_teachers",
            "enrollments",
            "terms",
            "courses",
            "contact_relationships",
            "sync_runs",
            "data_warnings",
            "api_keys",
        } <= tables

        migrations.downgrade(url, "base")
        assert asyncio.run(_tables(url)) == {"alembic_version"}

        migrations.upgrade(url)
        migrations.check(url)  # raises when models and migrations disagree
    finally:
        asyncio.run(drop_database(server_database_url, name))
