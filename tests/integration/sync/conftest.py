"""Fixtures for sync tests: the real pipeline against real Postgres, Clever faked over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import respx
from pydantic import SecretStr

from app.mirror.pg import init_connection
from app.settings import Settings, to_asyncpg_url
from app.sync.service import SyncDeps
from app.sync.tokens import DistrictTokens
from tests.integration.sync.fake_clever import BASE_URL, TOKEN, FakeClever

MIRROR_TABLES = (
    "districts, district_sync_state, schools, users, user_schools, sections, section_teachers,"
    " enrollments, terms, courses, contact_relationships, sync_runs, data_warnings"
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database; the sync commits, so tables are emptied afterwards."""
    pool = await asyncpg.create_pool(
        to_asyncpg_url(database_url), min_size=1, max_size=6, init=init_connection
    )
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.execute(f"TRUNCATE {MIRROR_TABLES}")
        for record in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'roster_staging'"
        ):
            await pool.execute(f'DROP TABLE roster_staging."{record["tablename"]}"')
        await pool.close()


@pytest.fixture
def clever() -> Iterator[FakeClever]:
    with respx.mock(assert_all_called=False) as router:
        yield FakeClever(router)


@pytest.fixture
def sync_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "clever_api_base_url": BASE_URL,
            "clever_district_tokens": [SecretStr(TOKEN)],
            "clever_max_retries": 2,
        }
    )


@pytest.fixture
def deps(sync_settings: Settings, pool: asyncpg.Pool) -> SyncDeps:
    return SyncDeps(settings=sync_settings, pool=pool, tokens=DistrictTokens(sync_settings))
