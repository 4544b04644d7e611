"""Hostile Clever payloads: the sync never crashes, stores what it can and warns for the rest.

Named malformed records first (wrong types, a 1 MB string, deep nesting, NUL characters,
lone surrogates, 10,000-character ids, duplicate ids in a page, a `next` link pointing
back), then records hypothesis generates from the wire models' JSON schema, with values of
any JSON type mixed in.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.clever import User
from app.mirror.merge import LIVE_TABLES
from app.sync.runs import RunTrigger
from app.sync.service import SyncDeps, sync_district
from app.sync.tokens import DistrictTokens
from tests.integration.sync.fake_clever import DISTRICT_ID, FakeClever, section, user
from tests.support.json_schema import ANY_JSON, from_schema


async def _sync(deps: SyncDeps) -> Any:
    return await sync_district(deps, DISTRICT_ID, trigger=RunTrigger.CLI)


async def _warnings(pool: asyncpg.Pool) -> set[tuple[str, str | None, str | None, str]]:
    rows = await pool.fetch("SELECT entity, record_id, field, code FROM data_warnings")
    return {(r["entity"], r["record_id"], r["field"], r["code"]) for r in rows}


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


async def test_malformed_records_are_stored_as_far_as_they_go(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    noise = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=1_000_000))
    clever.put("schools", {"id": "sch1", "name": "North"})
    clever.put("users", user("ok1", "student", school="sch1"))
    wrong_types = user("types1", "student", school="sch1")
    wrong_types |= {"name": 5, "email": {"a": 1}, "created": [1, 2]}
    wrong_types["roles"]["student"] |= {"grade": 7, "dob": ["1/1/2010"], "schools": "sch1"}
    clever.put("users", wrong_types)
    clever.put("users", {"id": "roles1", "roles": "student", "name": {"first": None}})
    clever.put("users", user("huge1", "student", school="sch1", first=noise, email=noise))
    clever.put("users", user("deep1", "student", school="sch1") | {"sis_custom": _deep(500)})
    clever.put("users", user("big1", "teacher", school="sch1") | {"n": 2**70, "m": -(2**80)})
    clever.put("users", user("nul1", "student", school="sch1", first="Nu\x00ll", last="\x00"))
    clever.put("users", user("nul2", "teacher", school="sch1") | {"x\x00key": "v\x00alue"})
    clever.put("users", user("x" * 10_000, "student", school="sch1"))
    clever.put("users", user("nul\x00id", "student", school="sch1"))
    clever.put("users", user("", "student", school="sch1"))
    sec1 = section("sec1", school="x" * 10_000, teachers=["nul2"], students=["ok1", "nul1"])
    clever.put("sections", sec1 | {"students": [*sec1["students"], 7]})  # a number for an id

    outcome = await _sync(deps)

    assert outcome.status == "succeeded", outcome
    stored = {r["id"]: r for r in await pool.fetch("SELECT * FROM users")}
    assert set(stored) == {"ok1", "types1", "roles1", "huge1", "deep1", "big1", "nul1", "nul2"}
    assert stored["nul1"]["name_first"] == "Null" and stored["nul1"]["name_last"] is None
    assert len(stored["huge1"]["name_first"]) == 1_000_000
    assert stored["huge1"]["email"] == noise and stored["huge1"]["email_normalized"] is None
    assert stored["nul2"]["raw"]["xkey"] == "value"
    assert stored["big1"]["raw"]["n"] == float(2**70)  # orjson reads such numbers as floats
    raw = stored["deep1"]["raw"]["sis_custom"]
    depth = 0
    while isinstance(raw, list):
        raw, depth = raw[0], depth + 1
    assert raw == "[nested too deep to store]" and depth < 500
    stored_section = await pool.fetchrow("SELECT school_id FROM sections WHERE id = 'sec1'")
    assert stored_section is not None and stored_section["school_id"] is None
    links = await pool.fetch("SELECT student_id FROM enrollments WHERE section_id = 'sec1'")
    assert {r["student_id"] for r in links} == {"ok1", "nul1"}

    warnings = await _warnings(pool)
    assert {
        ("users", "types1", "email", "invalid_type"),
        ("users", "types1", "dob", "invalid_type"),
        ("users", "roles1", "roles", "missing_role"),
        ("users", "huge1", "name.first", "value_too_long"),
        ("users", "huge1", "email", "invalid_email"),
        ("users", "deep1", "raw", "unstorable_value"),
        ("users", "nul1", "name.first", "invalid_character"),
        ("users", "nul2", "raw", "unstorable_value"),
        ("users", None, "id", "invalid_id"),
        ("users", None, "id", "missing_id"),
        ("sections", "sec1", "students", "unknown_student"),
    } <= warnings

    # The same payload again changes nothing: what was made storable hashes the same.
    before = await pool.fetch("SELECT id, xmin::text FROM users ORDER BY id")
    assert (await _sync(deps)).status == "succeeded"
    assert await pool.fetch("SELECT id, xmin::text FROM users ORDER BY id") == before


async def test_lone_surrogates_and_duplicate_ids_in_a_page(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    clever.put("schools", {"id": "sch1", "name": "North"})
    clever.put("users", user("u1", "student", school="sch1", first="Old"))
    clever.put("users", user("u2", "student", school="sch1", first="PLACEHOLDER"))

    def hostile(path: str, body: dict[str, Any]) -> dict[str, Any] | bytes:
        if path != "users":
            return body
        entries = body["data"]
        twin = json.loads(json.dumps(entries[0]))
        twin["data"]["name"]["first"] = "Twin"
        body["data"] = [*entries, twin]  # u1 twice in one page
        # A lone surrogate escape: valid JSON text no UTF-8 string can hold.
        return json.dumps(body).replace("PLACEHOLDER", "Pa\\ud800t").encode()

    clever.rewrite_page = hostile
    outcome = await _sync(deps)

    assert outcome.status == "succeeded", outcome
    names = dict(await pool.fetch("SELECT id, name_first FROM users ORDER BY id"))
    assert names["u2"] == "Pa\ufffdt"
    assert names["u1"] in {"Old", "Twin"}, "one of the two copies, not both"
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = 'u1'") == 1


async def test_a_next_link_pointing_back_fails_the_run_and_changes_nothing(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    clever.put("schools", {"id": "sch1", "name": "North"})
    for n in range(5):
        clever.put("users", user(f"u{n}", "student", school="sch1"))
    assert (await _sync(deps)).status == "succeeded"
    before = {t: await pool.fetch(f"SELECT *, xmin::text FROM {t} ORDER BY 1") for t in LIVE_TABLES}

    paged = deps.settings.model_copy(update={"clever_page_size": 2})
    deps = SyncDeps(settings=paged, pool=deps.pool, tokens=DistrictTokens(paged))

    def backwards(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "users":
            for link in body["links"]:
                if link["rel"] == "next" and "starting_after=u3" in link["uri"]:
                    link["uri"] = link["uri"].replace("starting_after=u3", "starting_after=u1")
        return body

    clever.rewrite_page = backwards
    outcome = await _sync(deps)

    assert outcome.status == "failed"
    assert outcome.error is not None and "next link back to a page already read" in outcome.error
    after = {t: await pool.fetch(f"SELECT *, xmin::text FROM {t} ORDER BY 1") for t in LIVE_TABLES}
    assert after == before


USERS = from_schema(User.model_json_schema()).map(
    lambda record: {**record, "id": record.get("id") or "x"}
)


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records=st.lists(USERS, min_size=1, max_size=8, unique_by=lambda r: r["id"]),
    wild=st.dictionaries(st.sampled_from(["name", "roles", "email", "created"]), ANY_JSON),
)
async def test_generated_users_never_fail_a_sync(
    clever: FakeClever,
    deps: SyncDeps,
    pool: asyncpg.Pool,
    records: list[dict[str, Any]],
    wild: dict[str, Any],
) -> None:
    clever.records["users"] = {}
    for record in records:
        clever.put("users", {**record, **wild} if record is records[0] else record)
    # Each example replaces the district's users: no mass-change guard in between.
    settings = deps.settings.model_copy(update={"sync_max_deactivate_ratio": 1.0})

    outcome = await _sync(SyncDeps(settings=settings, pool=pool, tokens=deps.tokens))

    assert outcome.status == "succeeded", outcome
    stored = {r["id"] for r in await pool.fetch("SELECT id FROM users WHERE deleted_at IS NULL")}
    usable = {
        r["id"].strip()
        for r in records
        if 0 < len(r["id"].strip()) <= 255 and "\x00" not in r["id"]
    }
    assert stored == usable
