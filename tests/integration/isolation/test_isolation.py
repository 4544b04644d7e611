"""No answer for a key limited to one district holds anything of another.

The districts' data name each other's records (see `conftest.py`); every route of the app is
called, with the ids of both districts, for a key of each district, and no body may contain
an id, an email domain, a name or the hijacked copy of the other district.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from app.local import groups
from app.mirror.merge import FOREIGN_ID_DETAIL
from sandbox.district import SandboxDistrict
from tests.integration.api.reads_support import api_routes, bearer
from tests.integration.isolation.conftest import (
    HIJACK_NAME,
    Hostility,
    IsolationKeys,
    Pair,
)
from tests.support.receiver import planted_webhook

# Pages followed per answer: tiny districts fit in a few.
MAX_PAGES = 20


def _forbidden(victim: SandboxDistrict, hijacker: Hostility, uuids: list[str]) -> re.Pattern[str]:
    """What of `victim` must never reach a key of the other district (`hijacker`): its ids
    and sync runs (apart from the id both districts serve: the other district sent that id
    itself), its email domain, its name, and what it served under the other's id."""
    ids = rf"(?!{re.escape(hijacker.hijacked_id)}){victim.codec.prefix}[0-9a-f]{{16}}"
    parts = [ids, *map(re.escape, uuids), re.escape(victim.generator.domain), HIJACK_NAME]
    if victim.name != hijacker.district.name:
        parts.append(re.escape(victim.name))
    return re.compile("|".join(parts))


# A valid body for each write route that takes one (keyed by route path).
WRITE_BODIES: dict[str, dict[str, object]] = {
    "/v1/users/{user_id}/overrides": {"preferred_name": "Leak"},
    "/v1/sections/{section_id}/overrides": {"display_name": "Leak"},
    "/v1/terms/{term_id}/overrides": {"name": "Leak", "active": True},
    "/v1/districts/{district_id}": {"sensitive_fields_enabled": False},
    "/v1/groups/{group_id}": {"name": "Leak"},
    "/v1/groups/{group_id}/members": {"user_ids": ["000000000000000000000000"]},
    "/v1/sections/{section_id}/split": {"count": 2},
    "/v1/people/{person_id}/split": {"user_id": "000000000000000000000000"},
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: dict[str, object] | None = None


def _values(pair: Pair, own: Hostility, uuids: dict[str, list[str]]) -> dict[str, list[str]]:
    """Path parameter values to try: the records the hostile data involves, of both sides."""
    values: dict[str, list[str]] = {}
    for side in (own, pair.a if own is pair.b else pair.b):
        district = side.district
        sections = [side.mixed_section, side.pointing_section]
        section = district.get(side.pointing_section)
        assert section is not None
        users = [side.student, side.contact, *side.victim_students, side.victim_teacher]
        users += [teacher for s in sections for teacher in district.truth.section_teacher_ids(s)]
        for name, found in {
            "district_id": [district.id],
            "school_id": [section[1]["school"], side.victim_school],
            "term_id": [section[1]["term_id"]],
            "course_id": [section[1]["course"]],
            "section_id": [*sections, side.hijacked_id],
            "user_id": [*users, side.hijacked_id],
            "run_id": uuids[district.id],
            "group_id": uuids[district.id],
            "person_id": uuids[district.id],
            "webhook_id": uuids[district.id],
            "delivery_id": uuids[district.id],
        }.items():
            values.setdefault(name, [])
            values[name] += [value for value in found if value and value not in values[name]]
    return values


def _calls(route: APIRoute, values: dict[str, list[str]]) -> Iterator[Call]:
    convertors = compile_path(route.path)[2]
    names = list(convertors)
    method = sorted(route.methods or {"GET"})[0]

    def fill(index: int, path: str) -> Iterator[str]:
        if index == len(names):
            yield path
            return
        for value in values[names[index]]:
            yield from fill(index + 1, path.replace("{" + names[index] + "}", value))

    query = {param.alias for param in route.dependant.query_params}
    for dependency in route.dependant.dependencies:
        query |= {param.alias for param in dependency.query_params}
    variants: list[dict[str, str]] = [{}]
    if "include_inactive" in query:
        variants.append({"include_inactive": "true"})
    for path in fill(0, route.path):
        for params in variants:
            yield Call(method, path, params, WRITE_BODIES.get(route.path))


async def _answers(api: httpx.AsyncClient, call: Call, key: str) -> list[httpx.Response]:
    """The call's answer, with every further page of a list."""
    if call.method != "GET":
        return [await api.request(call.method, call.path, json=call.body, headers=bearer(key))]
    answers, params = [], dict(call.params)
    for _ in range(MAX_PAGES):
        response = await api.get(call.path, params=params, headers=bearer(key))
        answers.append(response)
        listed = response.status_code == 200 and response.text.startswith('{"data":')
        cursor = response.json().get("next_cursor") if listed else None
        if not isinstance(cursor, str):
            break
        params["cursor"] = cursor
    return answers


async def _walk_every_route(
    pair: Pair, keys: IsolationKeys, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> int:
    """Ask every route, for each district's key, with the ids of both districts; fail on
    anything of the other district in any answer. Returns how many calls were made."""
    # Each district's runs, groups and people: ids of its own, as much as its records'.
    uuids: dict[str, list[str]] = {pair.a.district.id: [], pair.b.district.id: []}
    for row in await pool.fetch(
        "SELECT district_id, id::text AS id FROM sync_runs WHERE district_id = ANY($1::text[])",
        list(uuids),
    ):
        uuids[row["district_id"]].append(row["id"])
    for row in await pool.fetch(
        "SELECT district_id, id FROM (SELECT district_id, id::text AS id, row_number() OVER"
        " (PARTITION BY district_id ORDER BY id) AS n FROM people"
        " WHERE district_id = ANY($1::text[])) p WHERE n <= 3",
        list(uuids),
    ):
        uuids[row["district_id"]].append(row["id"])
    # A custom group in each district (its teacher's, with one of its students): group ids
    # are the district's as much as its run ids are.
    teachers = {}
    for side in (pair.a, pair.b):
        users = list(side.district.iter_records("users"))
        teachers[side.district.id] = next(u["id"] for u in users if "teacher" in u["roles"])
        student = next(u["id"] for u in users if "student" in u["roles"])
        async with pool.acquire() as connection, connection.transaction():
            group_id = await groups.create_group(
                connection,
                district_id=side.district.id,
                name="Isolation",
                owner_id=teachers[side.district.id],
                member_ids=[student],
                source_section_id=None,
                actor="isolation test",
            )
        uuids[side.district.id].append(str(group_id))
        # A webhook of the district, with a delivery (of its district record).
        async with pool.acquire() as connection:
            hook, delivered = await planted_webhook(
                connection, side.district.id, actor="isolation test"
            )
        uuids[side.district.id] += [hook, *delivered]
    routes = api_routes()
    sides = ((pair.a, keys.a_only, pair.b), (pair.b, keys.b_only, pair.a))
    asked: set[tuple[str, str]] = set()
    calls = 0
    for own, key, other in sides:
        forbidden = _forbidden(other.district, own, uuids[other.district.id])
        values = _values(pair, own, uuids)
        for route in routes:
            # Writes are asked only of the other district's runs (and districts): a key
            # limited to its own district must not start, approve or reject anything there,
            # and the mirror stays as the fixtures left it.
            writes = bool((route.methods or set()) - {"GET", "HEAD"})
            route_values = values
            if writes:
                route_values = {
                    name: [value for value in found if forbidden.search(value)]
                    for name, found in values.items()
                } | {
                    name: uuids[other.district.id]
                    for name in ("run_id", "group_id", "person_id", "webhook_id", "delivery_id")
                }
            for call in _calls(route, route_values):
                body: dict[str, object]
                if call.path in ("/v1/sync", "/sync"):
                    body = {"district_id": other.district.id}
                    answers = [await api.post(call.path, json=body, headers=bearer(key))]
                    expected_status: int | None = 404
                    echoed = [other.district.id]
                elif call.path == "/v1/people/merge":
                    # The other district's records are not seen: as if there were none.
                    records = [u["id"] for u in other.district.iter_records("users")][:2]
                    body = {"user_ids": records}
                    answers = [await api.post(call.path, json=body, headers=bearer(key))]
                    expected_status = 404
                    echoed = records
                elif call.path == "/v1/webhooks" and call.method == "POST":
                    # A webhook of the other district's changes: the district is not seen.
                    body = {
                        "url": "http://127.0.0.1:9/leak",
                        "secret": "isolation-webhook-secret",
                        "districts": [other.district.id],
                    }
                    answers = [await api.post(call.path, json=body, headers=bearer(key))]
                    expected_status = 404
                    echoed = [other.district.id]
                elif call.path == "/v1/groups":
                    # A group owned by the other district's teacher: the owner is not seen.
                    owner = teachers[other.district.id]
                    body = {"name": "Leak", "owner_id": owner}
                    answers = [await api.post(call.path, json=body, headers=bearer(key))]
                    expected_status = 404
                    echoed = [owner]
                else:
                    answers = await _answers(api, call, key)
                    # An id of the other district is answered as an unknown one.
                    expected_status = 404 if writes or forbidden.search(call.path) else None
                    echoed = [segment for segment in call.path.split("/") if len(segment) > 8]
                calls += 1
                asked.add((route.path, own.district.id))
                for response in answers:
                    assert response.status_code < 500, (call, response.text)
                    if call.path.startswith("/v1/"):
                        assert response.headers["cache-control"] == "no-store", call
                    if expected_status is not None:
                        assert response.status_code == expected_status, (call, response.text)
                    # A 404 repeats the id it was asked for: that tells nothing.
                    text = response.text
                    for asked_id in echoed:
                        text = text.replace(asked_id, "")
                    leaked = forbidden.search(text)
                    assert leaked is None, (call, own.district.id, leaked.group(0), text[:2000])
    assert asked == {
        (route.path, side.district.id) for route in routes for side in (pair.a, pair.b)
    }
    assert calls > 10 * len(routes)
    print(f"isolation matrix: {len(routes)} routes x 2 districts' keys, {calls} calls")
    return calls


async def test_every_route_shows_a_key_nothing_of_another_district(
    pair: Pair,
    isolation_keys: IsolationKeys,
    isolation_api: httpx.AsyncClient,
    isolation_pool: asyncpg.Pool,
) -> None:
    await _walk_every_route(pair, isolation_keys, isolation_api, isolation_pool)


async def test_reads_join_within_the_district_even_over_links_that_cross(
    pair: Pair,
    isolation_keys: IsolationKeys,
    isolation_api: httpx.AsyncClient,
    isolation_pool: asyncpg.Pool,
) -> None:
    """Defence in depth: links joining two districts, planted behind the merge's back (as
    rows written before the merge refused them would be), still show nothing."""
    planted: list[tuple[str, str, tuple[object, ...]]] = []
    for side in (pair.a, pair.b):
        district_id = side.district.id
        student, teacher = side.victim_students[0], side.victim_teacher
        planted += [
            (
                "INSERT INTO enrollments (section_id, student_id, district_id) VALUES ($1, $2, $3)",
                "DELETE FROM enrollments WHERE section_id = $1 AND student_id = $2"
                " AND district_id = $3",
                (side.mixed_section, student, district_id),
            ),
            (
                "INSERT INTO section_teachers (section_id, teacher_id, district_id, position)"
                " VALUES ($1, $2, $3, 9)",
                "DELETE FROM section_teachers WHERE section_id = $1 AND teacher_id = $2"
                " AND district_id = $3",
                (side.mixed_section, teacher, district_id),
            ),
            (
                "INSERT INTO user_schools (user_id, role, school_id, district_id)"
                " VALUES ($1, 'student', $2, $3)",
                "DELETE FROM user_schools WHERE user_id = $1 AND school_id = $2"
                " AND district_id = $3",
                (side.student, side.victim_school, district_id),
            ),
            (
                "INSERT INTO contact_relationships (contact_id, student_id, district_id)"
                " VALUES ($1, $2, $3)",
                "DELETE FROM contact_relationships WHERE contact_id = $1 AND student_id = $2"
                " AND district_id = $3",
                (side.contact, student, district_id),
            ),
        ]
    try:
        for insert, _, args in planted:
            await isolation_pool.execute(insert, *args)
        await _walk_every_route(pair, isolation_keys, isolation_api, isolation_pool)
    finally:
        for _, delete, args in planted:
            await isolation_pool.execute(delete, *args)


async def test_links_to_another_district_are_not_stored_and_warned(
    pair: Pair, isolation_pool: asyncpg.Pool
) -> None:
    for side in (pair.a, pair.b):
        district_id = side.district.id
        warnings = {
            (row["entity"], row["record_id"], row["field"])
            for row in await isolation_pool.fetch(
                "SELECT entity, record_id, field FROM data_warnings"
                " WHERE district_id = $1 AND code = 'foreign_reference' AND resolved_at IS NULL",
                district_id,
            )
        }
        assert warnings >= {
            ("sections", side.mixed_section, "students"),
            ("sections", side.mixed_section, "teachers"),
            ("sections", side.pointing_section, "school_id"),
            ("sections", side.pointing_section, "term_id"),
            ("sections", side.pointing_section, "course_id"),
            ("sections", side.pointing_section, "primary_teacher_id"),
            ("users", side.student, "schools"),
            ("users", side.contact, "student_relationships"),
        }
        # The warnings name no record of the other district.
        details = await isolation_pool.fetch(
            "SELECT detail FROM data_warnings WHERE district_id = $1", district_id
        )
        assert not any(side.victim.codec.prefix in (row["detail"] or "") for row in details)
        for table, column in (
            ("enrollments", "student_id"),
            ("section_teachers", "teacher_id"),
            ("contact_relationships", "student_id"),
            ("user_schools", "school_id"),
        ):
            crossing = await isolation_pool.fetchval(
                f"SELECT count(*) FROM {table} l WHERE l.district_id = $1 AND NOT EXISTS ("
                f" SELECT 1 FROM users u WHERE u.id = l.{column} AND u.district_id = $1"
                f" UNION ALL SELECT 1 FROM schools s WHERE s.id = l.{column}"
                f" AND s.district_id = $1)",
                district_id,
            )
            assert crossing == 0, table
        pointing = await isolation_pool.fetchrow(
            "SELECT school_id, term_id, course_id, primary_teacher_id, display_name,"
            " raw->>'school' AS raw_school FROM sections WHERE id = $1",
            side.pointing_section,
        )
        assert pointing is not None
        assert pointing["raw_school"] == side.victim_school  # kept as Clever sent it
        assert [pointing[c] for c in ("school_id", "term_id", "course_id")] == [None] * 3
        assert pointing["primary_teacher_id"] is None
        assert side.victim.codec.prefix not in pointing["display_name"]


async def test_a_record_whose_id_another_district_owns_is_skipped_and_warned(
    pair: Pair, isolation_pool: asyncpg.Pool
) -> None:
    for side in (pair.a, pair.b):
        owner = await isolation_pool.fetchrow(
            f"SELECT district_id, deleted_at, raw::text AS raw"
            f" FROM {side.hijacked_collection} WHERE id = $1",
            side.hijacked_id,
        )
        assert owner is not None
        assert owner["district_id"] == side.victim.id
        assert owner["deleted_at"] is None
        assert HIJACK_NAME not in owner["raw"]
        warning = await isolation_pool.fetchrow(
            "SELECT entity, field, detail, first_run_id FROM data_warnings"
            " WHERE district_id = $1 AND record_id = $2 AND code = 'foreign_id'",
            side.district.id,
            side.hijacked_id,
        )
        assert warning is not None
        assert (warning["entity"], warning["field"]) == (side.hijacked_collection, "id")
        assert warning["detail"] == FOREIGN_ID_DETAIL
        assert warning["first_run_id"] == pair.outcomes[side.district.id].run_id
        # The only warnings about that id in the hostile district are this one.
        codes = await isolation_pool.fetch(
            "SELECT code FROM data_warnings WHERE district_id = $1 AND record_id = $2",
            side.district.id,
            side.hijacked_id,
        )
        assert [row["code"] for row in codes] == ["foreign_id"]


async def test_a_hostile_sync_writes_no_row_of_the_other_district(pair: Pair) -> None:
    for side in (pair.a, pair.b):
        before, after = pair.untouched[side.district.id]
        assert sum(len(rows) for rows in before.values()) > 100
        assert before == after, side.district.id
