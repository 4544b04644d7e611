"""Sensitive student fields per district: recorded at the first sync, switched by an
administrator (API or CLI), and erased everywhere, raw records included, when disabled."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess

import asyncpg
import pytest

from app.api.keys import Scope, create_key
from app.local import sensitive
from app.settings import Settings
from app.sync.normalize import SENSITIVE_STUDENT_FIELDS
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.server import RunningSandbox
from tests.e2e.test_processes import ROSTER, _environment
from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.support import (
    sandbox_settings,
    sync_deps,
    sync_ok,
    wait_for,
)
from tests.support.app import app_client

# A sensitive field as a JSON member, in any text or jsonb column.
_MEMBER = '"(' + "|".join(SENSITIVE_STUDENT_FIELDS) + ')"\\s*:'


async def _sensitive_values(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows holding a sensitive value, per table and column, across every table."""
    columns = await pool.fetch(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns"
        " WHERE table_schema IN ('public', 'roster_staging')"
        " AND data_type IN ('text', 'jsonb', 'json')"
    )
    found = {}
    for row in columns:
        name = f'"{row["table_schema"]}"."{row["table_name"]}"'
        count = await pool.fetchval(
            f'SELECT count(*) FROM {name} WHERE "{row["column_name"]}"::text ~ $1', _MEMBER
        )
        if count:
            found[f"{row['table_name']}.{row['column_name']}"] = count
    found["users.sensitive"] = await pool.fetchval(
        "SELECT count(*) FROM users WHERE sensitive IS NOT NULL"
    )
    return {where: count for where, count in found.items() if count}


def _deps(
    settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool, page_size: int = 10_000
) -> SyncDeps:
    configured = sandbox_settings(
        settings,
        sandbox=sandbox,
        district=sandbox.districts[0],
        sensitive_fields_enabled=True,
        page_size=page_size,
    )
    return sync_deps(configured, pool=pool)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROSTER, "districts", "sensitive", *args],
        env=_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_disabling_erases_every_value_and_syncs_keep_none(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    flag = "SELECT sensitive_fields_enabled FROM districts WHERE id = $1"
    assert await mirror_pool.fetchval(flag, district.id) is True
    stored = await _sensitive_values(mirror_pool)
    assert stored.get("users.sensitive") and stored.get("users.raw"), stored

    async with mirror_pool.acquire() as connection:
        admin = await create_key(connection, name="admin", scopes=[Scope.ADMIN], district_ids=None)
        writer = await create_key(
            connection, name="writer", scopes=[Scope.READ, Scope.WRITE], district_ids=None
        )
    async with app_client(deps.settings) as api:
        path = f"/v1/districts/{district.id}"
        body = {"sensitive_fields_enabled": False}
        assert_problem(await api.patch(path, json=body), 401)
        assert_problem(await api.patch(path, json=body, headers=bearer(writer.secret)), 403)
        assert_problem(await api.patch(path, json={}, headers=bearer(admin.secret)), 422)
        assert_problem(
            await api.patch(
                path, json={"sensitive_fields_enabled": "no"}, headers=bearer(admin.secret)
            ),
            422,
        )
        assert_problem(
            await api.patch("/v1/districts/nope", json=body, headers=bearer(admin.secret)), 404
        )
        assert await _sensitive_values(mirror_pool) == stored
        response = await api.patch(path, json=body, headers=bearer(admin.secret))
        assert response.status_code == 200, response.text
        assert response.json()["sensitive_fields_enabled"] is False
    assert await _sensitive_values(mirror_pool) == {}

    # The service-wide setting no longer decides for this district: full and incremental
    # syncs keep nothing, even of a student whose sensitive fields just changed.
    student = next(
        u["id"] for u in district.iter_records("users") if "student" in (u.get("roles") or {})
    )
    district.update(student, {"roles": {"student": {"iep_status": "Y", "gifted_status": "Y"}}})
    outcome = await sync_district(
        deps, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.CLI
    )
    assert outcome.status is RunStatus.SUCCEEDED
    await sync_ok(deps, district=district)
    assert await _sensitive_values(mirror_pool) == {}

    # The CLI switches it back (values return with the next sync) and off again.
    enabled = _cli(settings, "enable", district.id)
    assert enabled.returncode == 0, enabled.stderr
    await sync_ok(deps, district=district)
    assert (await _sensitive_values(mirror_pool)).get("users.sensitive")
    disabled = _cli(settings, "disable", district.id)
    assert disabled.returncode == 0, disabled.stderr
    assert "erased" in disabled.stdout + disabled.stderr
    assert await _sensitive_values(mirror_pool) == {}
    unknown = _cli(settings, "disable", "no-such-district")
    assert unknown.returncode == 1 and "no-such-district" in unknown.stdout + unknown.stderr
    assert _cli(settings, "maybe", district.id).returncode == 2


async def _fetching(pool: asyncpg.Pool, district_id: str) -> bool | None:
    progress = await pool.fetchval(
        "SELECT progress::text FROM sync_runs WHERE district_id = $1 AND status = 'running'",
        district_id,
    )
    return True if progress and ('"users"' in progress or '"events"' in progress) else None


@pytest.mark.parametrize("mode", [RunMode.FULL, RunMode.INCREMENTAL])
async def test_a_district_disabled_while_its_sync_runs_keeps_nothing(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool, mode: RunMode
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool, page_size=20)
    await sync_ok(deps, district=district)
    # Changed students, so the run brings sensitive values to write.
    for user in list(district.iter_records("users")):
        if "student" in (user.get("roles") or {}):
            district.update(user["id"], {"roles": {"student": {"iep_status": "Y"}}})
    tiny_sandbox.state.set_faults(dataclasses.replace(tiny_sandbox.state.faults, latency_ms=100))
    task = asyncio.create_task(sync_district(deps, district.id, mode=mode, trigger=RunTrigger.CLI))
    await wait_for(lambda: _fetching(mirror_pool, district.id), what="the run mid-fetch")
    async with mirror_pool.acquire() as connection:
        assert await asyncio.wait_for(sensitive.set_enabled(connection, district.id, False), 10)
    assert not task.done()
    outcome = await task
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert await _sensitive_values(mirror_pool) == {}
