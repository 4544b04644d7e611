"""A reference to an id no district has yet, which later turns out to be another district's."""

from __future__ import annotations

import asyncpg

from app.settings import Settings
from sandbox.server import SandboxConfig, run_in_thread
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps, sync_ok


async def test_a_reference_is_dropped_once_its_record_shows_up_in_another_district(
    settings: Settings, isolation_pool: asyncpg.Pool
) -> None:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=81, districts=2)) as sandbox:
        first, second = sandbox.districts
        deps = {
            district.id: sync_deps(
                sandbox_settings(settings, sandbox=sandbox, district=district),
                pool=isolation_pool,
            )
            for district in (first, second)
        }
        section_id = next(iter(first.iter_records("sections")))["id"]
        school_id = next(iter(second.iter_records("schools")))["id"]
        first.update(section_id, {"school": school_id})

        # Nobody has the school yet: kept as Clever sent it, warned as unknown.
        await sync_ok(deps[first.id], district=first)
        stored = await isolation_pool.fetchval(
            "SELECT school_id FROM sections WHERE id = $1", section_id
        )
        assert stored == school_id

        # Then the other district brings it: the next sync drops the reference.
        await sync_ok(deps[second.id], district=second)
        await sync_ok(deps[first.id], district=first)
        row = await isolation_pool.fetchrow(
            "SELECT school_id, raw->>'school' AS sent FROM sections WHERE id = $1", section_id
        )
        assert row is not None
        assert (row["school_id"], row["sent"]) == (None, school_id)
        codes = {
            record["code"]
            for record in await isolation_pool.fetch(
                "SELECT code FROM data_warnings WHERE record_id = $1 AND field = 'school_id'"
                " AND resolved_at IS NULL",
                section_id,
            )
        }
        assert codes == {"foreign_reference"}

        # Unchanged data changes nothing more.
        before = await isolation_pool.fetchval(
            "SELECT xmin::text FROM sections WHERE id = $1", section_id
        )
        await sync_ok(deps[first.id], district=first)
        after = await isolation_pool.fetchval(
            "SELECT xmin::text FROM sections WHERE id = $1", section_id
        )
        assert before == after
