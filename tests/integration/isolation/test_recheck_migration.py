"""Rows a sync stored before districts were kept apart are looked at again (migration
7c3d91a5e2b8), and the next sync drops what crosses districts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import asyncpg

from tests.integration.isolation.conftest import Pair
from tests.integration.sync_sandbox.support import sync_ok

MIGRATION = next(
    (Path(__file__).resolve().parents[3] / "migrations" / "versions").glob("*_7c3d91a5e2b8_*.py")
)


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recheck", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_records_with_crossing_links_are_resynced_without_them(
    pair: Pair, isolation_pool: asyncpg.Pool
) -> None:
    side = pair.a
    district_id = side.district.id
    # A stay in one of A's sections for a student of B, as an old sync could have stored.
    student = side.victim_students[0]
    clean_section = next(
        section_id
        for section_id in await isolation_pool.fetch(
            "SELECT id FROM sections WHERE district_id = $1 AND id <> ALL($2::text[]) ORDER BY id",
            district_id,
            [side.mixed_section, side.pointing_section],
        )
    )["id"]
    await isolation_pool.execute(
        "INSERT INTO enrollments (section_id, student_id, district_id) VALUES ($1, $2, $3)",
        clean_section,
        student,
        district_id,
    )
    hashed_before = await isolation_pool.fetchval(
        "SELECT count(*) FROM sections WHERE district_id = $1 AND content_hash IS NOT NULL",
        district_id,
    )
    for statement in _migration().statements():
        await isolation_pool.execute(statement)
    cleared = await isolation_pool.fetch(
        "SELECT id FROM sections WHERE district_id = $1 AND content_hash IS NULL", district_id
    )
    assert [row["id"] for row in cleared] == [clean_section]
    assert hashed_before - 1 == await isolation_pool.fetchval(
        "SELECT count(*) FROM sections WHERE district_id = $1 AND content_hash IS NOT NULL",
        district_id,
    )

    await sync_ok(pair.deps[district_id], district=side.district)
    open_stays = await isolation_pool.fetchval(
        "SELECT count(*) FROM enrollments WHERE section_id = $1 AND student_id = $2"
        " AND ended_at IS NULL",
        clean_section,
        student,
    )
    assert open_stays == 0
    assert await isolation_pool.fetchval(
        "SELECT content_hash IS NOT NULL FROM sections WHERE id = $1", clean_section
    )
