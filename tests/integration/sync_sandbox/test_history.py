"""History: the change log of each run, the change feed over it, as-of reads, and the
lineage of terms and courses Clever recreated with new ids."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.history.prune import prune
from app.sync.full import decide_held_run
from app.sync.runs import RunMode, RunStatus
from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.local_support import Edited, first_record
from tests.integration.sync_sandbox.support import sync_once

Json = dict[str, Any]


async def _latest(edited: Edited) -> str:
    cursor: str = (await edited.get("/v1/changes/latest"))["cursor"]
    return cursor


async def _feed(edited: Edited, cursor: str, **params: Any) -> tuple[list[Json], str]:
    """Every change after `cursor` (following `next_cursor`), and the cursor after them."""
    changes: list[Json] = []
    while True:
        response = await edited.api.get(
            "/v1/changes", params={"cursor": cursor, **params}, headers=bearer(edited.reader)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        changes += body["data"]
        if body["next_cursor"] == cursor or not body["data"]:
            return changes, body["next_cursor"]
        cursor = body["next_cursor"]


def _summary(changes: list[Json]) -> set[tuple[Any, ...]]:
    return {
        (c["entity"], c.get("section_id"), c.get("user_id"), c["op"], tuple(c["fields"] or ()))
        if c["entity"] in ("enrollments", "section_teachers")
        else (c["entity"], c["id"], c["op"], tuple(c["fields"] or ()))
        for c in changes
    }


def _two_students(edited: Edited) -> tuple[str, str, str]:
    """A section, a student of it to leave it, and a student elsewhere to rename."""
    section = first_record(edited.district, "sections")
    leaving = section["students"][0]
    renamed = next(
        user["id"]
        for user in edited.district.iter_records("users")
        if "student" in (user.get("roles") or {}) and user["id"] not in section["students"]
    )
    return section["id"], leaving, renamed


@pytest.mark.parametrize("mode", [RunMode.FULL, RunMode.INCREMENTAL])
async def test_the_feed_lists_exactly_each_runs_changes_in_order(
    edited: Edited, mode: RunMode
) -> None:
    district = edited.district
    start = await _latest(edited)
    # A no-change re-sync writes nothing to the log.
    await edited.run(mode)
    assert (await _feed(edited, start))[0] == []

    section, leaving, renamed = _two_students(edited)
    district.update(renamed, {"name": {"first": "Renamed"}})
    district.remove_students(section, [leaving])
    run_id = await edited.run(mode)
    changes, end = await _feed(edited, start)
    assert _summary(changes) == {
        ("users", renamed, "updated", ("name_first",)),
        ("enrollments", section, leaving, "ended", ()),
    }
    assert {c["run_id"] for c in changes} == {run_id}
    assert all(c["district_id"] == district.id for c in changes)
    enrollment = next(c for c in changes if c["entity"] == "enrollments")
    assert enrollment["id"] == f'["{section}", "{leaving}"]'

    # A second run's changes come after the first's; the feed resumes from any cursor.
    district.add_students(section, [leaving])
    second_run = await edited.run(mode)
    more, _ = await _feed(edited, end)
    assert _summary(more) == {("enrollments", section, leaving, "started", ())}
    assert {c["run_id"] for c in more} == {second_run}
    everything, _ = await _feed(edited, start)
    assert everything == changes + more
    one_by_one, _ = await _feed(edited, start, limit=1)
    assert one_by_one == everything
    seqs = [c["seq"] for c in everything]
    assert seqs == sorted(seqs)
    # Filters: only what they let through, and the cursor still moves past the rest.
    users_only, after_users = await _feed(edited, start, entity="users")
    assert [c["id"] for c in users_only] == [renamed]
    assert (await _feed(edited, after_users, entity="users"))[0] == []
    other_district, _ = await _feed(edited, start, district_id="no-such-district")
    assert other_district == []


async def test_a_held_run_adds_nothing_to_the_feed_until_approved(edited: Edited) -> None:
    district = edited.district
    start = await _latest(edited)
    unshared = district.unshare("users", 0.8, role="student")
    held = await sync_once(edited.deps, district=district)
    assert held.status is RunStatus.HELD, held.error
    assert (await _feed(edited, start))[0] == []
    approved = await decide_held_run(
        edited.pool, held.run_id, approve=True, decided_by="test", options=edited.deps.options
    )
    assert approved.status is RunStatus.SUCCEEDED, approved.error
    changes, _ = await _feed(edited, start)
    deactivated = [c for c in changes if c["entity"] == "users" and c["op"] == "deactivated"]
    assert len(deactivated) == unshared
    assert {c["run_id"] for c in changes} == {str(held.run_id)}


async def test_a_key_of_another_district_sees_no_change(edited: Edited) -> None:
    response = await edited.api.get("/v1/changes", headers=bearer(edited.elsewhere))
    assert response.status_code == 200 and response.json()["data"] == []
    mine = await edited.api.get("/v1/changes", headers=bearer(edited.reader))
    assert mine.json()["data"]


@pytest.mark.parametrize("cursor", ["0", "abc", "1-2-3", "-1-0", "99999999999999999999-0"])
async def test_a_cursor_the_api_did_not_issue_is_422(edited: Edited, cursor: str) -> None:
    response = await edited.api.get(
        "/v1/changes", params={"cursor": cursor}, headers=bearer(edited.reader)
    )
    assert_problem(response, 422)


def _as_of_paths(edited: Edited) -> list[str]:
    district = edited.district
    section = first_record(district, "sections")
    student = section["students"][1]
    teacher = section["teacher"]
    school = section["school"]
    return [
        f"/v1/users/{student}",
        f"/v1/users/{student}/sections",
        f"/v1/users/{student}/sections/by-term",
        f"/v1/users/{teacher}/sections",
        f"/v1/teachers/{teacher}/students",
        f"/v1/students/{student}/teachers",
        f"/v1/sections/{section['id']}",
        f"/v1/schools/{school}/users",
    ]


async def _capture(edited: Edited, paths: list[str]) -> tuple[datetime, dict[str, Json]]:
    answers = {path: await edited.get(path) for path in paths}
    instant = datetime.now(UTC)
    await asyncio.sleep(0.01)
    return instant, answers


@pytest.mark.parametrize("mode", [RunMode.FULL, RunMode.INCREMENTAL])
async def test_as_of_answers_equal_what_the_api_answered_then(
    edited: Edited, mode: RunMode
) -> None:
    district = edited.district
    paths = _as_of_paths(edited)
    section = first_record(district, "sections")
    student = section["students"][1]
    captured = [await _capture(edited, paths)]
    # Change sets that move what each path shows: names, memberships, a section's data,
    # a student who leaves and one who comes back.
    change_sets: list[Callable[[], object]] = [
        lambda: (
            district.update(student, {"name": {"last": "Historic"}}),
            district.update(section["id"], {"name": "Renamed section", "period": "9"}),
        ),
        lambda: district.remove_students(section["id"], [student]),
        lambda: district.delete(section["students"][2]),
        lambda: (
            district.add_students(section["id"], [student]),
            district.restore(section["students"][2]),
        ),
    ]
    for change in change_sets:
        change()
        await edited.run(mode)
        captured.append(await _capture(edited, paths))
    # Each instant's answers differ from the next (the test would see a broken as-of).
    assert all(a[1] != b[1] for a, b in itertools.pairwise(captured))
    for instant, answers in captured:
        for path, answer in answers.items():
            then = await edited.api.get(
                path, params={"as_of": instant.isoformat()}, headers=bearer(edited.reader)
            )
            assert then.status_code == 200, (path, then.text)
            assert then.json() == answer, (instant, path)


async def test_as_of_outside_history_is_404_or_422(edited: Edited) -> None:
    student = first_record(edited.district, "users", "student")["id"]
    first = await edited.pool.fetchval(
        "SELECT min(applied_at) FROM changes WHERE district_id = $1", edited.district.id
    )
    before = (first - timedelta(milliseconds=1)).isoformat()
    for path in _as_of_paths(edited):
        response = await edited.api.get(
            path, params={"as_of": before}, headers=bearer(edited.reader)
        )
        assert_problem(response, 404)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for as_of in (tomorrow, "yesterday", "2027-13-45", "2026-12-01T10:00:00"):
        response = await edited.api.get(
            f"/v1/users/{student}", params={"as_of": as_of}, headers=bearer(edited.reader)
        )
        assert_problem(response, 422)
    today = datetime.now(UTC).date().isoformat()
    response = await edited.api.get(
        f"/v1/users/{student}", params={"as_of": today}, headers=bearer(edited.reader)
    )
    assert response.status_code in (200, 404)  # the day's first instant: maybe before the sync
    # A key of another district: 404 as if the id did not exist, then or now.
    response = await edited.api.get(
        f"/v1/users/{student}",
        params={"as_of": datetime.now(UTC).isoformat()},
        headers=bearer(edited.elsewhere),
    )
    assert_problem(response, 404)


def _recreate_term(edited: Edited) -> tuple[str, str, list[str]]:
    """Recreate the first term with a new id (same name and dates), moving all but one of
    its sections to the new one; the old id, the new id, and the sections moved."""
    district = edited.district
    old = first_record(district, "terms")
    new = district.create("terms", {k: old[k] for k in ("name", "start_date", "end_date")})
    sections = [s["id"] for s in district.iter_records("sections") if s.get("term_id") == old["id"]]
    moved = sections[1:]
    for section_id in moved:
        district.update(section_id, {"term_id": new})
    district.delete(old["id"])
    return old["id"], new, moved


@pytest.mark.parametrize("mode", [RunMode.FULL, RunMode.INCREMENTAL])
async def test_a_recreated_term_continues_its_lineage_in_one_bucket(
    edited: Edited, mode: RunMode
) -> None:
    district = edited.district
    old, new, moved = _recreate_term(edited)
    student = next(
        sid
        for s in district.iter_records("sections")
        if s["id"] == moved[0]
        for sid in s.get("students") or []
    )
    await edited.run(mode)
    term = await edited.get(f"/v1/terms/{new}")
    assert term["lineage_id"] == old
    assert term["sources"]["lineage_id"]["origin"] == "clever"
    gone = await edited.get(f"/v1/terms/{old}?include_inactive=true")
    assert gone["lineage_id"] == old and gone["active"] is False
    # The student's sections of either term share one bucket, shown as the new term.
    buckets = (await edited.get(f"/v1/users/{student}/sections/by-term"))["data"]
    lineages = [b["term"]["lineage_id"] for b in buckets if b["term"]]
    assert lineages.count(old) == 1
    bucket = next(b for b in buckets if b["term"] and b["term"]["lineage_id"] == old)
    assert bucket["term"]["id"] == new
    # A term's sections by lineage: those of both terms.
    of_new = await edited.get(f"/v1/terms/{new}/sections?limit=500")
    lineage = await edited.get(f"/v1/terms/{new}/sections?limit=500&lineage_id={old}")
    old_sections = await edited.get(f"/v1/terms/{old}/sections?limit=500")
    assert {s["id"] for s in of_new["data"]} == set(moved)
    assert {s["id"] for s in lineage["data"]} == set(moved) | {
        s["id"] for s in old_sections["data"]
    }
    assert len(old_sections["data"]) == 1
    elsewhere = await edited.get(f"/v1/terms/{new}/sections?lineage_id={new}")
    assert elsewhere["data"] == []

    # An override cuts the link: the new term starts its own lineage, and its bucket.
    cut = await edited.put(f"/v1/terms/{new}/overrides", {"lineage_id": None})
    assert cut["lineage_id"] == new
    assert cut["sources"]["lineage_id"] | {"updated_at": None} == {
        "value": new,
        "clever_value": old,
        "origin": "override",
        "updated_at": None,
        "updated_by": "registrar",
    }
    await edited.run(RunMode.FULL)
    assert (await edited.get(f"/v1/terms/{new}"))["lineage_id"] == new
    response = await edited.api.delete(f"/v1/terms/{new}/overrides", headers=bearer(edited.writer))
    assert response.json()["lineage_id"] == old


async def test_lineage_is_not_linked_across_districts_or_to_a_term_still_in_use(
    edited: Edited,
) -> None:
    district = edited.district
    old = first_record(district, "terms")
    same = {k: old[k] for k in ("name", "start_date", "end_date")}
    twin = district.create("terms", same)  # beside the old one, which stays in use
    await edited.run(RunMode.FULL)
    assert (await edited.get(f"/v1/terms/{twin}"))["lineage_id"] == twin
    # Another district's deactivated term of the same name: never a predecessor.
    async with edited.pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO districts (id, name) VALUES ('history-other', 'Other')"
            " ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            "INSERT INTO terms (id, district_id, name, start_date, end_date, first_seen_at,"
            " deleted_at) VALUES ('history-other-term', 'history-other', $1, $2::date,"
            " $3::date, now() - interval '1 hour', now())",
            old["name"],
            datetime.fromisoformat(old["start_date"][:10]).date(),
            datetime.fromisoformat(old["end_date"][:10]).date(),
        )
    try:
        fresh = district.create("terms", same)
        await edited.run(RunMode.FULL)
        assert (await edited.get(f"/v1/terms/{fresh}"))["lineage_id"] == fresh
    finally:
        async with edited.pool.acquire() as connection:
            await connection.execute("DELETE FROM terms WHERE district_id = 'history-other'")
            await connection.execute("DELETE FROM changes WHERE district_id = 'history-other'")
            await connection.execute("DELETE FROM districts WHERE id = 'history-other'")


async def test_the_prune_keeps_what_as_of_reads_need_and_expires_old_cursors(
    edited: Edited,
) -> None:
    district = edited.district
    student = first_record(district, "users", "student")["id"]
    path = f"/v1/users/{student}"
    district.update(student, {"name": {"first": "Renamed"}})
    await edited.run(RunMode.FULL)
    renamed = await edited.get(path)
    # Everything so far happened 1,000 days ago.
    await edited.pool.execute(
        "UPDATE changes SET applied_at = applied_at - interval '1000 days' WHERE district_id = $1",
        edited.district.id,
    )
    versions = await edited.pool.fetchval(
        "SELECT count(*) FROM changes WHERE entity = 'users' AND record_id = $1", student
    )
    assert versions == 2
    async with edited.pool.acquire() as connection:
        pruned = await prune(connection, retention_days=730)
    try:
        await _check_pruned(edited, student, renamed, pruned.deleted)
    finally:  # the horizon is the database's: other tests read from the start
        await edited.pool.execute("DELETE FROM history_horizon")


async def _check_pruned(edited: Edited, student: str, renamed: Json, deleted: int) -> None:
    district, path = edited.district, f"/v1/users/{student}"
    assert deleted >= 1
    kept = await edited.pool.fetch(
        "SELECT op, fields FROM changes WHERE entity = 'users' AND record_id = $1", student
    )
    assert [(row["op"], row["fields"]) for row in kept] == [("updated", ["name_first"])]
    # From the cutoff on, as-of reads are exact; before it, refused.
    since = (datetime.now(UTC) - timedelta(days=729)).isoformat()
    then = await edited.api.get(path, params={"as_of": since}, headers=bearer(edited.reader))
    assert then.status_code == 200 and then.json() == renamed
    before = (datetime.now(UTC) - timedelta(days=731)).isoformat()
    response = await edited.api.get(path, params={"as_of": before}, headers=bearer(edited.reader))
    assert "before the history kept" in assert_problem(response, 422)["detail"]
    # A cursor older than the horizon is 410; reading from the start begins at the horizon.
    response = await edited.api.get(
        "/v1/changes", params={"cursor": "0-0"}, headers=bearer(edited.reader)
    )
    assert_problem(response, 410)
    response = await edited.api.get("/v1/changes", headers=bearer(edited.reader))
    assert response.status_code == 200 and response.json()["data"] == []
    # What changes next is fed as before.
    start = await _latest(edited)
    district.update(student, {"name": {"first": "Again"}})
    await edited.run(RunMode.FULL)
    assert _summary((await _feed(edited, start))[0]) == {
        ("users", student, "updated", ("name_first",))
    }


async def test_a_roll_over_links_recreated_courses_and_starts_new_terms(edited: Edited) -> None:
    district = edited.district
    old_terms = {t["id"]: t["name"] for t in district.iter_records("terms")}
    old_courses = {c["id"] for c in district.iter_records("courses")}
    renamed = district.roll_over_terms()
    await edited.run(RunMode.FULL)
    for old, new in renamed.items():
        if old in old_courses:
            # The same course (number and name) under a new id: one lineage.
            assert (await edited.get(f"/v1/courses/{new}"))["lineage_id"] == old
        else:
            # The next school year's term has another name: a lineage of its own.
            term = await edited.get(f"/v1/terms/{new}")
            assert term["name"] != old_terms[old] and term["lineage_id"] == new
    course_old, course_new = next((o, n) for o, n in renamed.items() if o in old_courses)
    both = await edited.get(f"/v1/courses/{course_new}/sections?lineage_id={course_old}")
    now = await edited.get(f"/v1/courses/{course_new}/sections")
    assert {s["id"] for s in both["data"]} >= {s["id"] for s in now["data"]}


async def test_a_recreated_course_continues_the_one_of_its_number_and_name(edited: Edited) -> None:
    district = edited.district
    first, second = list(district.iter_records("courses"))[:2]
    assert first["number"] != second["number"]
    district.update(second["id"], {"name": first["name"]})  # two courses of one name
    await edited.run(RunMode.FULL)
    renamed = district.roll_over_terms()
    await edited.run(RunMode.FULL)
    for old in (first["id"], second["id"]):
        assert (await edited.get(f"/v1/courses/{renamed[old]}"))["lineage_id"] == old


async def test_a_runs_recorded_end_comes_after_its_merge(edited: Edited) -> None:
    run = await edited.pool.fetchrow(
        "SELECT id, started_at, finished_at FROM sync_runs"
        " WHERE district_id = $1 AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
        edited.district.id,
    )
    applied = await edited.pool.fetchval(
        "SELECT max(applied_at) FROM changes WHERE run_id = $1", run["id"]
    )
    # The merge's changes carry its transaction's start; the run ends when the merge did.
    assert run["started_at"] < applied < run["finished_at"]
