"""Fixtures of the end-to-end tests: each module provides `sandbox` (its districts); the
mirror is emptied, the districts' arq jobs removed and the workers stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from app.settings import Settings
from sandbox.server import RunningSandbox
from tests.e2e.workers import Workers
from tests.integration.api.sync_support import forget_jobs
from tests.support.mirror import emptied_pool
from workers.main import QUEUE_NAME, deserialize_job, serialize_job


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with emptied_pool(database_url) as pool:
        yield pool


@pytest.fixture
async def arq_redis(redis_url: str, sandbox: RunningSandbox) -> AsyncIterator[ArqRedis]:
    """An arq pool like the API's; the sandbox districts' job keys are removed afterwards."""
    redis = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )
    try:
        yield redis
    finally:
        try:
            await forget_jobs(redis, [district.id for district in sandbox.districts])
        finally:
            await redis.aclose()


@pytest.fixture
def workers(
    settings: Settings, tmp_path: Path, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> Iterator[Workers]:
    """Stopped before the mirror is emptied and the job keys removed (fixture order)."""
    started = Workers(settings, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
