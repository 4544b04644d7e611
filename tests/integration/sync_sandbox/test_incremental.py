"""Incremental syncs from the sandbox's events: the same mirror a full sync makes, nothing
applied twice, and a full sync by itself when events cannot bring the mirror up to date."""

from __future__ import annotations

import asyncpg

from app.mirror.merge import ENTITY_ORDER, LIVE_TABLES
from app.settings import Settings
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox
from tests.integration.api.sync_support import arq_queue, forget_jobs, queued_job
from tests.integration.sync_sandbox.support import (
    assert_mirror_matches_truth,
    run_row,
    sandbox_settings,
    snapshot_rows,
    sync_deps,
    sync_ok,
)
from tests.integration.sync_sandbox.test_mirror_matches_truth import _change_the_district
from workers.jobs import poll_events


async def _incremental(deps: SyncDeps, district: SandboxDistrict) -> asyncpg.Record:
    """One incremental run that must succeed; its `sync_runs` row."""
    outcome = await sync_district(
        deps, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.CLI
    )
    assert outcome.status is RunStatus.SUCCEEDED, (outcome.status, outcome.error)
    return await run_row(deps.pool, outcome.run_id)


async def _cursor(pool: asyncpg.Pool, district_id: str) -> str | None:
    cursor: str | None = await pool.fetchval(
        "SELECT events_cursor FROM district_sync_state WHERE district_id = $1", district_id
    )
    return cursor


def _deps(
    settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool, page_size: int = 10_000
) -> SyncDeps:
    district = sandbox.districts[0]
    configured = sandbox_settings(settings, sandbox=sandbox, district=district, page_size=page_size)
    return sync_deps(configured, pool=pool)


async def test_events_bring_the_mirror_where_a_full_sync_would_and_apply_once(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    start = await _cursor(mirror_pool, district.id)
    assert start is not None and start == district.newest_event_id()

    changes = _change_the_district(district)
    created = district.create("users", {"name": {"first": "Newly"}}, role="student")
    district.add_students(changes.emptied_section, [created])
    run = await _incremental(deps, district)
    assert (run["mode"], run["fallback_reason"]) == ("incremental", None)
    assert run["counts"]["events"]["applied"] > changes.unshared
    assert run["counts"]["users"]["deactivated"] == changes.unshared + 1
    assert await _cursor(mirror_pool, district.id) == district.newest_event_id()
    await assert_mirror_matches_truth(mirror_pool, district=district)
    newly = await mirror_pool.fetchval("SELECT name_first FROM users WHERE id = $1", created)
    assert newly == "Newly"

    # Nothing new: one request, only the run's own row written.
    before = await snapshot_rows(mirror_pool, district_id=district.id)
    idle = await _incremental(deps, district)
    assert idle["clever_requests"] == 1
    assert idle["counts"] == {"events": {}}
    assert (idle["idle"], run["idle"]) == (True, False)
    assert await snapshot_rows(mirror_pool, district_id=district.id) == before

    # The same events again, from the cursor the full sync left: nothing changes.
    await mirror_pool.execute(
        "UPDATE district_sync_state SET events_cursor = $2 WHERE district_id = $1",
        district.id,
        start,
    )
    replay = await _incremental(deps, district)
    assert replay["counts"]["events"]["applied"] == run["counts"]["events"]["applied"]
    assert await snapshot_rows(mirror_pool, district_id=district.id) == before


async def test_without_a_cursor_an_incremental_run_is_a_full_sync(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    run = await _incremental(_deps(settings, tiny_sandbox, mirror_pool), district)
    assert run["mode"] == "full"
    assert run["fallback_reason"].startswith("no events cursor")
    assert await _cursor(mirror_pool, district.id) == district.newest_event_id()
    await assert_mirror_matches_truth(mirror_pool, district=district)


async def test_an_expired_cursor_falls_back_to_a_full_sync(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    district.update(district.truth.ids("users", "teacher")[0], {"name": {"last": "Later"}})
    district.expire_events()
    run = await _incremental(deps, district)
    assert run["mode"] == "full"
    assert "cursor unknown" in run["fallback_reason"]
    await assert_mirror_matches_truth(mirror_pool, district=district)


async def test_events_turned_off_fall_back_to_full_syncs_without_a_cursor(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    district.events_enabled = False
    run = await _incremental(deps, district)
    assert run["mode"] == "full"
    assert "events not enabled" in run["fallback_reason"]
    # The full sync found no events either: the district keeps no cursor.
    assert await _cursor(mirror_pool, district.id) is None
    again = await _incremental(deps, district)
    assert again["fallback_reason"].startswith("no events cursor")


async def test_a_district_not_synced_for_too_long_gets_a_full_sync(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    await mirror_pool.execute(
        "UPDATE sync_runs SET finished_at = now() - interval '26 days' WHERE district_id = $1",
        district.id,
    )
    run = await _incremental(deps, district)
    assert run["mode"] == "full"
    assert run["fallback_reason"] == "the last successful sync is older than 25 days"


async def test_events_in_many_small_pages_end_where_one_page_would(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    # Every page is its own batch and transaction: a record deleted in one page and created
    # again in a later one, or updated twice across pages, must end as Clever has it.
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool, page_size=7)
    await sync_ok(deps, district=district)
    changes = _change_the_district(district)
    district.update(changes.renamed_teacher, {"name": {"last": "Renamed-Twice"}})
    run = await _incremental(deps, district)
    assert run["progress"]["events"]["pages"] > 3
    await assert_mirror_matches_truth(mirror_pool, district=district)
    last = await mirror_pool.fetchval(
        "SELECT name_last FROM users WHERE id = $1", changes.renamed_teacher
    )
    assert last == "Renamed-Twice"


async def test_the_events_poll_queues_an_incremental_sync_once_a_district_is_due(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    async with arq_queue(deps.settings) as queue:
        await forget_jobs(queue, [district.id])
        ctx = {"redis": queue, "sync": deps}
        try:
            # Synced just now: not due before SYNC_EVENTS_INTERVAL_SECONDS (300 s).
            assert await poll_events(ctx) == 0
            await mirror_pool.execute(
                "UPDATE sync_runs SET created_at = created_at - interval '10 minutes'"
                " WHERE district_id = $1",
                district.id,
            )
            assert await poll_events(ctx) == 1
            job = await queued_job(queue, district.id)
            assert job is not None
            assert (job.kwargs["mode"], job.kwargs["trigger"]) == ("incremental", "schedule")
            # The queued run is the district's newest: the next poll leaves it alone.
            assert await poll_events(ctx) == 0
        finally:
            await forget_jobs(queue, [district.id])


async def test_renaming_a_teacher_by_event_renames_their_unnamed_sections(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    section_id = district.truth.edge_cases["section_no_name"]
    found = district.get(section_id)
    assert found is not None and not found[1].get("name")
    teacher_id = found[1]["teacher"]
    before = await mirror_pool.fetchval(
        "SELECT display_name FROM sections WHERE id = $1", section_id
    )
    district.update(teacher_id, {"name": {"last": "Renamed-By-Event"}})
    await _incremental(deps, district)
    after = await mirror_pool.fetchval(
        "SELECT display_name FROM sections WHERE id = $1", section_id
    )
    assert "Renamed-By-Event" not in before
    assert after.endswith("Renamed-By-Event")


# Bookkeeping columns: when the mirror learned something, not what it holds.
_WHEN_COLUMNS = frozenset(
    {
        "first_seen_at",
        "updated_at",
        "deleted_at",
        "started_at",
        "ended_at",
        "id_seq",
        "first_run_id",
        "resolved_at",
        "resolved_run_id",
    }
)


async def _table_hashes(pool: asyncpg.Pool, district_id: str) -> dict[str, str]:
    """Per live table, an md5 over the district's rows in order: the columns that carry
    data, and whether each row holds now (active, open, unresolved)."""
    hashes: dict[str, str] = {}
    for table in LIVE_TABLES:
        columns = [
            row["column_name"]
            for row in await pool.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                table,
            )
            if row["column_name"] not in _WHEN_COLUMNS
            and not (table == "data_warnings" and row["column_name"] == "id")
        ]
        holds = {
            "enrollments": "ended_at IS NULL",
            "data_warnings": "resolved_at IS NULL",
        }.get(table, "deleted_at IS NULL")
        owner = "id" if table == "districts" else "district_id"
        # A link or warning that no longer holds is history, which only an incremental
        # mirror has: compare what holds.
        where = f"{owner} = $1" + ("" if table in ENTITY_ORDER else f" AND {holds}")
        projection = ", ".join(columns) + f", {holds} AS holds"
        hashes[table] = await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))"
            f" FROM (SELECT {projection} FROM {table} WHERE {where}) r",
            district_id,
        )
    return hashes


async def test_incremental_runs_leave_the_tables_a_fresh_full_sync_leaves(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    """Term roll-over, a mass update, a section deleted and one created, a student moved, a
    user deleted and restored: mirrored by events, then compared, table by table, with what a
    full sync of the same final state leaves."""
    district = tiny_sandbox.districts[0]
    deps = _deps(settings, tiny_sandbox, mirror_pool, page_size=7)
    await sync_ok(deps, district=district)
    changes = _change_the_district(district)
    for teacher in district.truth.ids("users", "teacher"):
        district.update(teacher, {"name": {"middle": "Mass"}})
    await _incremental(deps, district)
    created = district.create("sections", {"name": "Brand New"})
    district.restore(changes.deleted_student)
    await _incremental(deps, district)
    assert await mirror_pool.fetchval("SELECT count(*) FROM sections WHERE id = $1", created) == 1
    restored = await mirror_pool.fetchval(
        "SELECT deleted_at IS NULL FROM users WHERE id = $1", changes.deleted_student
    )
    assert restored is True

    by_events = await _table_hashes(mirror_pool, district.id)
    full = await sync_ok(deps, district=district)
    assert await _table_hashes(mirror_pool, district.id) == by_events
    written = {
        table: counts
        for table, counts in full.counts.items()
        if any(counts.get(key, 0) for key in ("created", "updated", "deactivated", "opened"))
    }
    assert written == {}
