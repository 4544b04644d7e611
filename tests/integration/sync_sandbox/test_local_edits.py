"""Local edits beside the mirror: overrides outlive full and incremental syncs, soft deletes
and restores, and warn when Clever's value moves under them; a reactivated term stays in use."""

from __future__ import annotations

import asyncpg

from app.api.keys import Scope, create_key
from app.settings import Settings
from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.local_support import Edited, first_record


async def test_overrides_outlive_syncs_and_warn_while_clever_differs(edited: Edited) -> None:
    district = edited.district
    student = first_record(district, "users", "student")["id"]
    section = first_record(district, "sections")["id"]
    term = first_record(district, "terms")["id"]

    user = await edited.put(
        f"/v1/users/{student}/overrides", {"preferred_name": "Sunny", "graduation_year": 2040}
    )
    clever_year = user["sources"]["graduation_year"]["clever_value"]
    assert (user["preferred_name"], user["name"]["preferred_first"]) == ("Sunny", "Sunny")
    assert user["graduation_year"] == 2040 and clever_year != 2040
    assert user["sources"]["preferred_name"] | {"updated_at": None} == {
        "value": "Sunny",
        "clever_value": user["sources"]["preferred_name"]["clever_value"],
        "origin": "override",
        "updated_at": None,
        "updated_by": "registrar",
    }
    assert user["sources"]["preferred_name"]["updated_at"] is not None
    assert await edited.get(f"/v1/users/{student}") == user
    before = await edited.pool.fetchval("SELECT now()")
    detail = await edited.put(f"/v1/sections/{section}/overrides", {"display_name": "Homeroom A"})
    # The override counts as a change of the record for `updated_since`.
    changed = await edited.api.get(
        "/v1/sections",
        params={"updated_since": before.isoformat(), "district_id": district.id},
        headers=bearer(edited.reader),
    )
    assert [s["id"] for s in changed.json()["data"]] == [section]
    assert detail["updated_at"] >= before.isoformat()
    assert detail["display_name"] == "Homeroom A" and detail["students"]
    await edited.put(f"/v1/terms/{term}/overrides", {"name": "Fall (local)"})

    # Clever changes all three: a full sync keeps the overrides and warns.
    district.update(student, {"roles": {"student": {"preferred_name": {"first": "Clever-new"}}}})
    district.update(section, {"name": "Renamed by Clever"})
    district.update(term, {"name": "Renamed term"})
    await edited.full()
    user = await edited.get(f"/v1/users/{student}")
    assert user["preferred_name"] == "Sunny" and user["graduation_year"] == 2040
    assert user["sources"]["preferred_name"]["clever_value"] == "Clever-new"
    assert (await edited.get(f"/v1/sections/{section}"))["display_name"] == "Homeroom A"
    term_shown = await edited.get(f"/v1/terms/{term}")
    assert term_shown["name"] == "Fall (local)"
    assert term_shown["sources"]["name"]["clever_value"] == "Renamed term"
    shadowed = await edited.shadowed()
    assert set(shadowed) == {
        ("users", student, "preferred_name"),
        ("sections", section, "display_name"),
        ("terms", term, "name"),
    }
    assert '"Renamed by Clever"' in shadowed[("sections", section, "display_name")]

    # An incremental sync: again kept; the warning follows Clever's newest value, and
    # resolves once Clever's value is the override's.
    district.update(section, {"name": "Renamed twice"})
    district.update(term, {"name": "Fall (local)"})
    await edited.incremental()
    assert (await edited.get(f"/v1/sections/{section}"))["display_name"] == "Homeroom A"
    shadowed = await edited.shadowed()
    assert set(shadowed) == {
        ("users", student, "preferred_name"),
        ("sections", section, "display_name"),
    }
    assert '"Renamed twice"' in shadowed[("sections", section, "display_name")]

    # Removing an override shows Clever's value and resolves its warning at once; a field
    # set to null removes only that field's override.
    response = await edited.api.delete(
        f"/v1/users/{student}/overrides", headers=bearer(edited.writer)
    )
    assert response.status_code == 200
    assert response.json()["preferred_name"] == "Clever-new"
    assert response.json()["sources"]["graduation_year"]["origin"] == "clever"
    assert set(await edited.shadowed()) == {("sections", section, "display_name")}
    both = await edited.put(f"/v1/terms/{term}/overrides", {"name": "Local", "active": True})
    assert both["sources"]["active"]["origin"] == "override"
    term_shown = await edited.put(f"/v1/terms/{term}/overrides", {"active": None})
    assert term_shown["name"] == "Local" and term_shown["sources"]["active"]["origin"] == "clever"

    # Soft delete and restore: the override comes back with the record.
    district.delete(section)
    await edited.full()
    gone = await edited.api.get(f"/v1/sections/{section}", headers=bearer(edited.reader))
    assert gone.status_code == 404
    district.restore(section)
    await edited.incremental()
    assert (await edited.get(f"/v1/sections/{section}"))["display_name"] == "Homeroom A"


async def test_a_reactivated_term_stays_in_use_across_syncs(edited: Edited) -> None:
    district = edited.district
    section = first_record(district, "sections")
    term = section["term_id"]
    district.delete(term)
    await edited.full()
    missing = await edited.api.get(f"/v1/terms/{term}", headers=bearer(edited.reader))
    assert missing.status_code == 404

    shown = await edited.put(f"/v1/terms/{term}/overrides", {"active": True})
    assert shown["active"] is True
    assert shown["sources"]["active"] | {"updated_at": None} == {
        "value": True,
        "clever_value": False,
        "origin": "override",
        "updated_at": None,
        "updated_by": "registrar",
    }
    for sync in (edited.full, edited.incremental):
        await sync()
        assert (await edited.get(f"/v1/terms/{term}"))["active"] is True
        listed = await edited.get(f"/v1/terms?district_id={district.id}&limit=1000")
        assert term in {t["id"] for t in listed["data"]}
        sections = await edited.get(f"/v1/terms/{term}/sections?limit=1000")
        assert section["id"] in {s["id"] for s in sections["data"]}
        student = section["students"][0]
        buckets = (await edited.get(f"/v1/users/{student}/sections/by-term"))["data"]
        bucket = next(b for b in buckets if b["term"] and b["term"]["id"] == term)
        assert bucket["term"]["active"] is True
    assert await edited.shadowed() == {}


async def test_graduation_years_are_inferred_only_when_clever_sends_none(edited: Edited) -> None:
    district = edited.district
    student = first_record(district, "users", "student")
    district.update(student["id"], {"roles": {"student": {"graduation_year": None}}})
    await edited.full()
    grade_level = await edited.pool.fetchval(
        "SELECT grade_level FROM users WHERE id = $1", student["id"]
    )
    user = await edited.get(f"/v1/users/{student['id']}")
    source = user["sources"]["graduation_year"]
    if grade_level is None or not -2 <= grade_level <= 12:
        assert user["graduation_year"] is None and source["origin"] == "clever"
        return
    assert source["clever_value"] is None and source["origin"] == "inferred"
    assert user["graduation_year"] == source["value"] and isinstance(source["value"], int)
    overridden = await edited.put(f"/v1/users/{student['id']}/overrides", {"graduation_year": 2050})
    assert overridden["sources"]["graduation_year"]["origin"] == "override"


async def test_override_requests_are_checked(
    edited: Edited, mirror_pool: asyncpg.Pool, settings: Settings
) -> None:
    district = edited.district
    student = first_record(district, "users", "student")["id"]
    teacher = first_record(district, "users", "teacher")["id"]
    path = f"/v1/users/{student}/overrides"
    api = edited.api
    async with mirror_pool.acquire() as connection:
        admin = await create_key(connection, name="admin", scopes=[Scope.ADMIN], district_ids=None)
    body = {"preferred_name": "X"}
    assert_problem(await api.put(path, json=body), 401)
    assert_problem(await api.put(path, json=body, headers=bearer(edited.reader)), 403)
    assert_problem(await api.delete(path, headers=bearer(edited.reader)), 403)
    assert_problem(await api.put(path, json=body, headers=bearer(edited.elsewhere)), 404)
    assert_problem(await api.delete(path, headers=bearer(edited.elsewhere)), 404)
    assert_problem(
        await api.put("/v1/users/nope/overrides", json=body, headers=bearer(edited.writer)), 404
    )
    for bad in (
        {},
        {"preferred_name": ""},
        {"preferred_name": "x" * 256},
        {"preferred_name": 7},
        {"graduation_year": "soon"},
        {"graduation_year": 12},
        {"nickname": "Al"},
    ):
        assert_problem(await api.put(path, json=bad, headers=bearer(edited.writer)), 422)
    assert_problem(await api.put(path, content=b"{not json", headers=bearer(edited.writer)), 422)
    assert_problem(
        await api.put(
            f"/v1/users/{teacher}/overrides",
            json={"graduation_year": 2030},
            headers=bearer(edited.writer),
        ),
        422,
    )
    term = first_record(district, "terms")["id"]
    assert_problem(
        await api.put(
            f"/v1/terms/{term}/overrides", json={"active": False}, headers=bearer(edited.writer)
        ),
        422,
    )
    # `admin` implies `roster:write`; nothing was written by the refused requests.
    written = "SELECT count(*) FROM overrides WHERE district_id = $1"
    assert await mirror_pool.fetchval(written, district.id) == 0
    shown = await api.put(path, json=body, headers=bearer(admin.secret))
    assert (
        shown.status_code == 200
        and shown.json()["sources"]["preferred_name"]["updated_by"] == "admin"
    )
