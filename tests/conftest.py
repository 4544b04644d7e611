"""Shared fixtures: a scratch Postgres database and Redis db on real servers.

Servers, in order of preference: DATABASE_URL / REDIS_URL when set; else the servers on
127.0.0.1 when they answer; else the embedded development servers. Each run creates its own
database (migrated once with Alembic) and uses its own Redis db, and removes both after.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app import migrations
from app.settings import Settings, to_asyncpg_url, to_sqlalchemy_url
from tests.support.app import app_client

TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "14"))
DEV_DATA_DIR = Path(__file__).resolve().parents[1] / ".devdata"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _server_database_url() -> str:
    if url := os.environ.get("DATABASE_URL"):
        return url
    if _answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from app.embedded import start_postgres

    return start_postgres(DEV_DATA_DIR)


def _server_redis_url() -> str:
    if url := os.environ.get("REDIS_URL"):
        return url
    if _answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    from app.embedded import start_redis

    return start_redis(DEV_DATA_DIR)


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query=f"db={db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


async def create_database(server_url: str, name: str) -> str:
    connection = await asyncpg.connect(to_asyncpg_url(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(to_asyncpg_url(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def server_database_url() -> str:
    """A URL of the Postgres server the tests may create databases on."""
    return _server_database_url()


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A scratch database for this test run, migrated to head."""
    name = f"roster_test_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(server_database_url, name))
    try:
        migrations.upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(server_database_url, name))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db of its own for this test run, emptied before and after."""
    url = with_redis_db(_server_redis_url(), TEST_REDIS_DB)

    async def flush() -> None:
        client = Redis.from_url(url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()

    asyncio.run(flush())
    yield url
    asyncio.run(flush())


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    """The suite's settings. Rate limits and lock-outs are off: the suite makes thousands of
    requests with one key, and many with bad keys, from one address; `test_limits.py` turns
    them on. So are the answers kept in memory: tests that write and read at once would
    race the change notification; `test_answers.py` turns them on."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        api_rate_limit_per_minute=0,
        api_auth_failures_before_lockout=0,
        api_answer_cache_mb=0,
        _env_file=None,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(to_sqlalchemy_url(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, lifespan included."""
    async with app_client(settings) as client:
        yield client
