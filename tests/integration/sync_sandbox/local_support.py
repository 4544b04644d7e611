"""A tiny sandbox district after one full sync, with the API in-process and keys to edit it:
for the tests of local data (overrides, groups, people)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from app.api.keys import Scope, create_key
from app.settings import Settings
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox
from tests.integration.api.sync_support import bearer
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps, sync_ok
from tests.support.app import app_client

Json = dict[str, Any]


@dataclass(frozen=True)
class Edited:
    district: SandboxDistrict
    deps: SyncDeps
    api: httpx.AsyncClient
    pool: asyncpg.Pool
    writer: str  # roster:read + roster:write, named "registrar"
    reader: str  # roster:read only
    elsewhere: str  # roster:read + roster:write, limited to a district that does not exist
    admin: str  # admin, every district

    async def full(self) -> None:
        await sync_ok(self.deps, district=self.district)

    async def incremental(self) -> None:
        outcome = await sync_district(
            self.deps, self.district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.CLI
        )
        assert outcome.status is RunStatus.SUCCEEDED, (outcome.status, outcome.error)
        run_mode = await self.pool.fetchval(
            "SELECT mode FROM sync_runs WHERE id = $1", outcome.run_id
        )
        assert run_mode == "incremental"

    async def run(self, mode: RunMode) -> str:
        """One run of `mode` that must succeed; its id."""
        outcome = await sync_district(
            self.deps, self.district.id, mode=mode, trigger=RunTrigger.CLI
        )
        assert outcome.status is RunStatus.SUCCEEDED, (outcome.status, outcome.error)
        return str(outcome.run_id)

    async def get(self, path: str, key: str | None = None) -> Json:
        response = await self.api.get(path, headers=bearer(key or self.reader))
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def put(self, path: str, body: Json) -> Json:
        response = await self.api.put(path, json=body, headers=bearer(self.writer))
        assert response.status_code == 200, response.text
        answer: Json = response.json()
        return answer

    async def shadowed(self) -> dict[tuple[str, str, str], str]:
        """Open `override_shadowed` warnings: (entity, record, field) -> detail."""
        rows = await self.pool.fetch(
            "SELECT entity, record_id, field, detail FROM data_warnings"
            " WHERE district_id = $1 AND code = 'override_shadowed' AND resolved_at IS NULL",
            self.district.id,
        )
        return {(r["entity"], r["record_id"], r["field"]): r["detail"] for r in rows}


@asynccontextmanager
async def edited_district(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> AsyncIterator[Edited]:
    """The sandbox's district synced once, the API over it, a writer and a reader key."""
    district = tiny_sandbox.districts[0]
    configured = sandbox_settings(settings, sandbox=tiny_sandbox, district=district)
    deps = sync_deps(configured, pool=mirror_pool)
    await sync_ok(deps, district=district)
    async with mirror_pool.acquire() as connection:
        writer = await create_key(
            connection, name="registrar", scopes=[Scope.READ, Scope.WRITE], district_ids=None
        )
        reader = await create_key(connection, name="reader", scopes=[Scope.READ], district_ids=None)
        elsewhere = await create_key(
            connection,
            name="elsewhere",
            scopes=[Scope.READ, Scope.WRITE],
            district_ids=["no-such-district"],
        )
        admin = await create_key(connection, name="admin", scopes=[Scope.ADMIN], district_ids=None)
    async with app_client(configured.model_copy(update={"api_key_cache_seconds": 0.0})) as api:
        yield Edited(
            district,
            deps,
            api,
            mirror_pool,
            writer.secret,
            reader.secret,
            elsewhere.secret,
            admin.secret,
        )


def first_record(district: SandboxDistrict, collection: str, role: str | None = None) -> Json:
    """The first record of the collection (with the role; a section with students and a
    term)."""
    for record in district.iter_records(collection):
        has_role = role is None or role in (record.get("roles") or {})
        usable = collection != "sections" or (record.get("students") and record.get("term_id"))
        if has_role and usable:
            return record
    raise AssertionError(f"no {collection} in the sandbox")
