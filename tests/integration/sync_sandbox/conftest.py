"""Fixtures: the real full sync against sandbox districts served over loopback HTTP.

Every test syncs a district of its own (distinct seeds give distinct ids), so tests share the
mirror tables without seeing each other's rows; they are emptied once the module is done.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from app.settings import Settings
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.integration.sync_sandbox.local_support import Edited, edited_district
from tests.integration.sync_sandbox.support import (
    SyncedDistrict,
    sandbox_settings,
    sync_deps,
    sync_ok,
)
from tests.support.mirror import emptied_pool

_tiny_seeds = itertools.count(101)


@pytest.fixture(scope="module")
async def mirror_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, shared by the module; the mirror is emptied after it."""
    async with emptied_pool(database_url) as pool:
        yield pool


@pytest.fixture
def tiny_sandbox() -> Iterator[RunningSandbox]:
    """A tiny district of its own, which the test may change."""
    with run_in_thread(SandboxConfig.build(size="tiny", seed=next(_tiny_seeds))) as running:
        yield running


@pytest.fixture(scope="module")
def s_sandbox() -> Iterator[RunningSandbox]:
    """An S district (10,000 students), read-only: tests must not change it."""
    with run_in_thread(SandboxConfig.build(size="S", seed=11)) as running:
        yield running


@pytest.fixture(scope="module")
async def synced_s(
    s_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> SyncedDistrict:
    """The S district, synced once for the whole module (sensitive fields disabled)."""
    district = s_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=s_sandbox, district=district), pool=mirror_pool
    )
    outcome = await sync_ok(deps, district=district)
    return SyncedDistrict(s_sandbox, district, deps, outcome)


@pytest.fixture
async def edited(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> AsyncIterator[Edited]:
    """A tiny district synced once, with the API in-process and keys to edit it."""
    async with edited_district(tiny_sandbox, settings, mirror_pool) as edited:
        yield edited
