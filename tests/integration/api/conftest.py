"""Fixtures: the roster API over districts mirrored from the sandbox by the real sync.

The package syncs two districts once: `S` (10,000 students, sensitive fields enabled) and a
`tiny` one that keys limited to `S` must not see. The mirror is emptied when the package ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from app.api.keys import Scope, create_key, revoke_key
from app.local import groups
from app.settings import Settings
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps, sync_ok
from tests.support.app import app_client
from tests.support.mirror import emptied_pool
from tests.support.receiver import planted_webhook


@dataclass(frozen=True)
class Keys:
    """API keys (their secrets) with different grants."""

    read: str  # roster:read, every district
    read_s: str  # roster:read, the S district only
    read_other: str  # roster:read, the tiny district only
    sensitive: str  # roster:read + roster:sensitive
    sync: str  # sync:write only
    admin: str
    revoked: str  # was roster:read + sync:write


@dataclass(frozen=True)
class Mirrored:
    """The districts the package mirrored."""

    s: SandboxDistrict
    other: SandboxDistrict


@pytest.fixture(scope="package")
async def api_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with emptied_pool(database_url) as pool:
        yield pool


@pytest.fixture(scope="package")
def s_sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="S", seed=31)) as running:
        yield running


@pytest.fixture(scope="package")
def other_sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=32)) as running:
        yield running


@pytest.fixture(scope="package")
async def mirrored(
    s_sandbox: RunningSandbox,
    other_sandbox: RunningSandbox,
    settings: Settings,
    api_pool: asyncpg.Pool,
) -> Mirrored:
    s, other = s_sandbox.districts[0], other_sandbox.districts[0]
    for sandbox, district, sensitive in ((s_sandbox, s, True), (other_sandbox, other, False)):
        configured = sandbox_settings(
            settings, sandbox=sandbox, district=district, sensitive_fields_enabled=sensitive
        )
        await sync_ok(sync_deps(configured, pool=api_pool), district=district)
    return Mirrored(s, other)


@pytest.fixture(scope="package")
async def keys(api_pool: asyncpg.Pool, mirrored: Mirrored) -> Keys:
    async def make(*scopes: Scope, districts: list[str] | None = None) -> str:
        async with api_pool.acquire() as connection:
            created = await create_key(
                connection, name="test " + "+".join(scopes), scopes=scopes, district_ids=districts
            )
        return created.secret

    revoked = await make(Scope.READ, Scope.SYNC_WRITE)
    async with api_pool.acquire() as connection:
        assert await revoke_key(connection, revoked[:10]) is not None
    return Keys(
        read=await make(Scope.READ),
        read_s=await make(Scope.READ, districts=[mirrored.s.id]),
        read_other=await make(Scope.READ, districts=[mirrored.other.id]),
        sensitive=await make(Scope.READ, Scope.SENSITIVE),
        sync=await make(Scope.SYNC_WRITE),
        admin=await make(Scope.ADMIN),
        revoked=revoked,
    )


@pytest.fixture(scope="package")
async def s_group(api_pool: asyncpg.Pool, mirrored: Mirrored) -> str:
    """A custom group in the S district, made from its ten-teacher section."""
    truth = mirrored.s.truth
    section_id = truth.edge_cases["section_ten_teachers"]
    section = truth.record(section_id)
    assert section is not None
    async with api_pool.acquire() as connection, connection.transaction():
        group_id = await groups.create_group(
            connection,
            district_id=mirrored.s.id,
            name="Package group",
            owner_id=section["teacher"],
            member_ids=(section.get("students") or [])[:3],
            source_section_id=section_id,
            actor="api tests",
        )
    return str(group_id)


@dataclass(frozen=True)
class SWebhook:
    id: str
    delivery_id: str


@pytest.fixture(scope="package")
async def s_webhook(api_pool: asyncpg.Pool, mirrored: Mirrored) -> SWebhook:
    """A webhook of the S district with one delivery (its district record), never sent."""
    async with api_pool.acquire() as connection:
        webhook_id, [delivery_id] = await planted_webhook(
            connection, mirrored.s.id, actor="api tests"
        )
    return SWebhook(webhook_id, delivery_id)


@pytest.fixture(scope="package")
async def s_person(api_pool: asyncpg.Pool, mirrored: Mirrored) -> str:
    """A person the S district's sync linked."""
    person_id: str = await api_pool.fetchval(
        "SELECT person_id::text FROM person_links WHERE district_id = $1 ORDER BY user_id LIMIT 1",
        mirrored.s.id,
    )
    assert person_id is not None
    return person_id


@pytest.fixture(scope="package")
def api_settings(settings: Settings) -> Settings:
    """Keys are looked up on every request, so a revocation shows at once."""
    return settings.model_copy(update={"api_key_cache_seconds": 0.0})


@pytest.fixture(scope="package")
async def api(api_settings: Settings, mirrored: Mirrored) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI, lifespan included."""
    async with app_client(api_settings) as client:
        yield client
