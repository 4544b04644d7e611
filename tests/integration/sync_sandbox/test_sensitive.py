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
from app.sync.full import decide_held_run
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


async def _sensitive_values(pool: asyncpg.Pool, district_id: str) -> dict[str, int]:
    """Rows holding a sensitive value, per table and column, across every table (the
    district's rows of tables that have a district)."""
    columns = await pool.fetch(
        "SELECT c.table_schema, c.table_name, c.column_name,"
        " EXISTS (SELECT 1 FROM information_schema.columns d WHERE d.table_schema ="
        " c.table_schema AND d.table_name = c.table_name AND d.column_name = 'district_id')"
        " AS has_district"
        " FROM information_schema.columns c"
        " WHERE c.table_schema IN ('public', 'roster_staging')"
        " AND c.data_type IN ('text', 'jsonb', 'json')"
    )
    found = {}
    for row in columns:
        name = f'"{row["table_schema"]}"."{row["table_name"]}"'
        of_district = "AND district_id = $2" if row["has_district"] else "AND $2::text IS NOT NULL"
        count = await pool.fetchval(
            f'SELECT count(*) FROM {name} WHERE "{row["column_name"]}"::text ~ $1 {of_district}',
            _MEMBER,
            district_id,
        )
        if count:
            found[f"{row['table_name']}.{row['column_name']}"] = count
    found["users.sensitive"] = await pool.fetchval(
        "SELECT count(*) FROM users WHERE sensitive IS NOT NULL AND district_id = $1", district_id
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
    stored = await _sensitive_values(mirror_pool, district.id)
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
        assert await _sensitive_values(mirror_pool, district.id) == stored
        response = await api.patch(path, json=body, headers=bearer(admin.secret))
        assert response.status_code == 200, response.text
        assert response.json()["sensitive_fields_enabled"] is False
    assert await _sensitive_values(mirror_pool, district.id) == {}

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
    assert await _sensitive_values(mirror_pool, district.id) == {}

    # The CLI switches it back (values return with the next sync) and off again.
    enabled = _cli(settings, "enable", district.id)
    assert enabled.returncode == 0, enabled.stderr
    await sync_ok(deps, district=district)
    assert (await _sensitive_values(mirror_pool, district.id)).get("users.sensitive")
    disabled = _cli(settings, "disable", district.id)
    assert disabled.returncode == 0, disabled.stderr
    assert "erased" in disabled.stdout + disabled.stderr
    assert await _sensitive_values(mirror_pool, district.id) == {}
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
    tiny_sandbox.state.set_faults(dataclasses.replace(tiny_sandbox.state.faults, latency_ms=400))
    task = asyncio.create_task(sync_district(deps, district.id, mode=mode, trigger=RunTrigger.CLI))
    await wait_for(lambda: _fetching(mirror_pool, district.id), what="the run mid-fetch")
    # The disable starts while the run runs; an incremental run that has applied a page holds
    # the flag until its end, so the disable may finish only with the run.
    assert not task.done()
    async with mirror_pool.acquire() as connection:
        assert await asyncio.wait_for(sensitive.set_enabled(connection, district.id, False), 30)
    outcome = await task
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert await _sensitive_values(mirror_pool, district.id) == {}


async def test_a_merge_waits_for_a_disable_under_way_and_keeps_nothing(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    """A disable that has erased but not committed yet, and a merge that writes a student
    the erase did not touch: the merge waits for the disable, then erases what it wrote."""
    district = tiny_sandbox.districts[0]
    await sync_ok(_deps(settings, tiny_sandbox, mirror_pool), district=district)

    async def merge(connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            await sensitive.hold_flag(connection, district.id)
            # What a merge of a new student with sensitive fields writes.
            await connection.execute(
                "INSERT INTO users (id, district_id, roles, sensitive)"
                " VALUES ('new-student', $1, ARRAY['student'], '{\"iep_status\": \"Y\"}')",
                district.id,
            )
            await sensitive.settle_after_merge(
                connection, district.id, staged_with=True, default=True
            )

    async with mirror_pool.acquire() as merging, mirror_pool.acquire() as disabling:
        transaction = disabling.transaction()
        await transaction.start()
        assert await sensitive.set_enabled(disabling, district.id, False)
        merged = asyncio.create_task(merge(merging))
        await asyncio.sleep(0.5)
        await transaction.commit()
        await asyncio.wait_for(merged, 10)
    assert await _sensitive_values(mirror_pool, district.id) == {}


async def test_an_approved_held_run_records_the_default_for_a_district_without_a_flag(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    """A district mirrored before its flag was recorded (null) whose next run is held and
    approved: it gets SENSITIVE_FIELDS_ENABLED (off here), not sensitive fields."""
    district = tiny_sandbox.districts[0]
    configured = sandbox_settings(settings, sandbox=tiny_sandbox, district=district)
    deps = sync_deps(configured, pool=mirror_pool)
    await sync_ok(deps, district=district)
    await mirror_pool.execute(
        "UPDATE districts SET sensitive_fields_enabled = NULL WHERE id = $1", district.id
    )
    district.unshare("users", 0.8, role="student")
    held = await sync_district(deps, district.id, trigger=RunTrigger.CLI)
    assert held.status is RunStatus.HELD, held.error
    approved = await decide_held_run(
        mirror_pool, held.run_id, approve=True, decided_by="test", options=deps.options
    )
    assert approved.status is RunStatus.SUCCEEDED, approved.error
    flag = "SELECT sensitive_fields_enabled FROM districts WHERE id = $1"
    assert await mirror_pool.fetchval(flag, district.id) is False
    assert await _sensitive_values(mirror_pool, district.id) == {}
