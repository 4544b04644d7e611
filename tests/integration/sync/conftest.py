"""Fixtures for sync tests: the real pipeline against real Postgres, Clever faked over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import respx
from pydantic import SecretStr

from app.settings import Settings
from app.sync.service import SyncDeps
from app.sync.tokens import DistrictTokens
from tests.integration.sync.fake_clever import BASE_URL, TOKEN, FakeClever
from tests.support.mirror import emptied_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database; the sync commits, so tables are emptied afterwards."""
    async with emptied_pool(database_url) as pool:
        yield pool


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
