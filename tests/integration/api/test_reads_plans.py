"""The hot roster reads reach their rows through indexes, never by scanning links;
pages of a collection cost their own length, not the district's size.

Checked on the S district's real statistics, with the plans Postgres makes for literal
values and the generic plans a prepared statement may switch to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
import pytest

from app.mirror.queries.collections import SECTIONS, USERS, Listing, Visibility, list_sql
from app.mirror.queries.roster import teacher_students_sql, user_sections_by_term_sql
from tests.integration.api.conftest import Mirrored

# Tables that grow with the district: a sequential scan of any of them is O(district).
LARGE_TABLES = {"enrollments", "section_teachers", "users", "user_schools", "sections"}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _scans(connection: asyncpg.Connection, sql: str, *args: Any) -> set[tuple[str, str]]:
    """(scan type, table) of every scan in the plan of `sql`."""
    (document,) = orjson.loads(await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
    return {
        (node["Node Type"], node["Relation Name"])
        for node in _nodes(document["Plan"])
        if "Relation Name" in node
    }


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_teacher_students_and_sections_by_term_use_indexes(
    mirrored: Mirrored, api_pool: asyncpg.Pool, plan_cache_mode: str
) -> None:
    truth = mirrored.s.truth
    edge = truth.edge_cases
    teacher_id = truth.section_teacher_ids(edge["section_ten_teachers"])[0]
    student_id = edge["student_in_three_schools"]
    districts = [mirrored.s.id]
    scope = Visibility(district_ids=districts)
    statements = [
        (teacher_students_sql(scope, paged=False), (teacher_id, 101, districts)),
        (teacher_students_sql(scope, paged=True), (teacher_id, 101, student_id, districts)),
        (user_sections_by_term_sql(scope, role=None), (student_id, districts)),
        (user_sections_by_term_sql(scope, role=None), (teacher_id, districts)),
    ]
    async with api_pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        for sql, args in statements:
            scans = await _scans(connection, sql, *args)
            assert {table for _, table in scans} >= {"users", "sections"}
            sequential = {table for kind, table in scans if kind == "Seq Scan"}
            assert not sequential & LARGE_TABLES, (sql, sorted(scans))


def _nodes_of(document: list[dict[str, Any]]) -> list[str]:
    return [node["Node Type"] for node in _nodes(document[0]["Plan"])]


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_page_of_a_one_district_key_is_read_in_index_order(
    mirrored: Mirrored, api_pool: asyncpg.Pool, plan_cache_mode: str
) -> None:
    # The small district's rows come after the S district's in id order: walking the primary
    # key from the start would read all of S first, and fetching all of its rows to sort
    # them is what a page of an M district must not do.
    scope = Visibility(district_ids=[mirrored.other.id])
    async with api_pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        for kind in (USERS, SECTIONS):
            for after in (None, "0"):
                sql, args = list_sql(kind, Listing(scope=scope, limit=10, after=after))
                document = orjson.loads(
                    await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
                )
                nodes = _nodes_of(document)
                assert "Sort" not in nodes and "Seq Scan" not in nodes, (kind.table, nodes)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_an_id_of_an_unseen_district_builds_no_page(
    mirrored: Mirrored, api_pool: asyncpg.Pool, plan_cache_mode: str
) -> None:
    # The owner is looked up within the key's districts first: for a teacher of S asked by
    # a key of the other district, no link is read, so the 404 costs what an unknown id's
    # does and timing cannot tell that the id exists elsewhere.
    truth = mirrored.s.truth
    teacher_id = truth.section_teacher_ids(truth.edge_cases["section_ten_teachers"])[0]
    student_id = truth.edge_cases["student_in_three_schools"]
    districts = [mirrored.other.id]
    scope = Visibility(district_ids=districts)
    statements = [
        (teacher_students_sql(scope, paged=False), (teacher_id, 101, districts)),
        (user_sections_by_term_sql(scope, role=None), (student_id, districts)),
    ]
    async with api_pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        for sql, args in statements:
            assert await connection.fetchrow(sql, *args) is None
            (document,) = orjson.loads(
                await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
            )
            read = {
                node["Relation Name"]
                for node in _nodes(document["Plan"])
                if "Relation Name" in node and node.get("Actual Loops", 0) > 0
            }
            assert read == {"users"}, (sql, read)
