"""The full sync against a faked Clever: what lands in Postgres, and what never does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from app.mirror import merge
from app.mirror.merge import LIVE_TABLES
from app.mirror.staging import Staging
from app.sync import cursors, full, runs
from app.sync.full import decide_held_run
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from tests.integration.sync.fake_clever import DISTRICT_ID, FakeClever, section, user


def seed(clever: FakeClever) -> None:
    """A small district with the seeds' edge cases."""
    for school_id, name in (
        ("sch1", "North High"),
        ("sch2", "South High"),
        ("sch3", "East Middle"),
    ):
        clever.put("schools", {"id": school_id, "name": name})
    clever.put(
        "terms",
        {"id": "term1", "name": "Fall", "start_date": "2024-08-20", "end_date": "2024-12-20"},
    )
    clever.put(
        "terms",
        {"id": "term2", "name": "Spring", "start_date": "2025-01-06", "end_date": "2025-06-10"},
    )
    clever.put("courses", {"id": "crs1", "name": "Algebra I", "number": "MA101"})
    clever.put(
        "users", user("t1", "teacher", first="Ada", last="Byron", email="ada@x.org", school="sch1")
    )
    clever.put(
        "users",
        user("t2", "teacher", first="Alan", last="Turing", email="alan@x.org", school="sch2"),
    )
    for n in range(3, 12):  # co-teachers
        clever.put(
            "users",
            user(
                f"t{n}",
                "teacher",
                first="Co",
                last=f"Teacher{n}",
                email=f"co{n}@x.org",
                school="sch1",
            ),
        )
    clever.put("users", user("a1", "district_admin", first="Ada", last="Byron", email="ADA@x.org"))
    clever.put(
        "users",
        user(
            "st1", "staff", first="Sam", last="Staff", email="sam@x.org", schools=["sch1", "sch2"]
        ),
    )
    clever.put(
        "users",
        user(
            "s1",
            "student",
            first="Zoë",
            last="Núñez",
            email="zoe.x.org",
            school="sch1",
            schools=["sch1"],
            grade="9",
        ),
    )
    clever.put("users", user("s2", "student", first="Li", last="Wei", school="sch1", grade="K"))
    clever.put("users", user("s3", "student", first="", last="Nameless", school="sch2", grade="10"))
    contact = user("c1", "contact", first="Pat", last="Parent")
    contact["roles"]["contact"]["student_relationships"] = [
        {"student": "s1", "relationship": "Parent", "type": "Parent/Guardian"},
        {"student": "s2", "relationship": "Aunt/Uncle", "type": "Emergency"},
        {"student": "ghost", "relationship": "Other"},
    ]
    clever.put("users", contact)
    clever.put(
        "sections",
        section("sec1", name="Algebra 1A", school="sch1", term="term1", course="crs1",
                teachers=["t1", *(f"t{n}" for n in range(3, 12))], students=["s1", "s2"]),
    )  # fmt: skip
    clever.put(
        "sections",
        section("sec2", name="Chemistry", school="sch2", term="term2", course="crsX",
                teachers=["t2"], students=["s1", "ghost"]),
    )  # fmt: skip
    clever.put(
        "sections",
        section("sec3", school="sch3", course="crs1", period="2", teachers=["t1"], students=["s1"]),
    )  # fmt: skip


async def _sync(deps: SyncDeps) -> full.SyncOutcome:
    return await sync_district(deps, DISTRICT_ID, trigger=RunTrigger.CLI)


async def _snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    """Every live row with its `xmin`: equal snapshots mean no row was written."""
    snapshot = {}
    for table in LIVE_TABLES:
        rows = await pool.fetch(
            f"SELECT xmin::text AS version, t::text AS row FROM {table} t ORDER BY 2"
        )
        snapshot[table] = [tuple(row) for row in rows]
    return snapshot


async def _warnings(pool: asyncpg.Pool) -> set[tuple[str, str | None, str]]:
    rows = await pool.fetch(
        "SELECT entity, record_id, code FROM data_warnings WHERE resolved_at IS NULL"
    )
    return {(row["entity"], row["record_id"], row["code"]) for row in rows}


async def test_first_sync_mirrors_records_links_and_warnings(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert outcome.counts["users"]["created"] == len(clever.records["users"])
    assert outcome.counts["sections"]["created"] == 3

    # A student's sections span every school, whatever their own school is.
    schools = await pool.fetch(
        "SELECT DISTINCT s.school_id FROM enrollments e JOIN sections s ON s.id = e.section_id"
        " WHERE e.student_id = 's1' AND e.ended_at IS NULL"
    )
    assert {row["school_id"] for row in schools} == {"sch1", "sch2", "sch3"}
    # Primary teacher first, co-teachers in Clever's order.
    teachers = await pool.fetch(
        "SELECT teacher_id, is_primary FROM section_teachers"
        " WHERE section_id = 'sec1' ORDER BY position"
    )
    assert [row["teacher_id"] for row in teachers] == ["t1", *(f"t{n}" for n in range(3, 12))]
    assert [row["is_primary"] for row in teachers] == [True] + [False] * 9
    # An unshared student is skipped, with a warning; the section stays.
    enrolled = await pool.fetch("SELECT student_id FROM enrollments WHERE section_id = 'sec2'")
    assert [row["student_id"] for row in enrolled] == ["s1"]
    # Staff with several schools and no primary.
    links = await pool.fetch(
        "SELECT school_id, is_primary FROM user_schools WHERE user_id = 'st1' ORDER BY 1"
    )
    assert [tuple(row) for row in links] == [("sch1", False), ("sch2", False)]
    contacts = await pool.fetch(
        "SELECT student_id, relationship FROM contact_relationships ORDER BY 1"
    )
    assert [tuple(row) for row in contacts] == [("s1", "Parent"), ("s2", "Aunt/Uncle")]

    user = await pool.fetchrow("SELECT * FROM users WHERE id = 's1'")
    assert user is not None
    assert (user["email"], user["email_valid"]) == ("zoe.x.org", False)
    assert user["raw"]["name"]["first"] == "Zoë"
    assert (await pool.fetchval("SELECT grade_level FROM users WHERE id = 's2'")) == 0
    assert await pool.fetchval("SELECT display_name FROM sections WHERE id = 'sec3'") == (
        "Algebra I - Period 2 - Ada Byron"
    )

    assert {
        ("sections", "sec2", "unknown_student"),
        ("sections", "sec2", "unknown_course"),
        ("sections", "sec3", "missing_name"),
        ("users", "s1", "invalid_email"),
        ("users", "s3", "missing_name"),
        ("users", "c1", "unknown_student"),
    } <= await _warnings(pool)
    run = await pool.fetchrow("SELECT * FROM sync_runs WHERE id = $1", outcome.run_id)
    assert run is not None
    assert (run["status"], run["trigger"], run["mode"]) == ("succeeded", "cli", "full")
    assert run["clever_requests"] >= len(full.COLLECTIONS)
    assert run["progress"]["users"]["records"] == len(clever.records["users"])
    assert run["warnings_count"] == outcome.warnings > 0


async def test_resync_of_unchanged_data_writes_no_row(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    first = await _sync(deps)
    assert first.status is RunStatus.SUCCEEDED
    before = await _snapshot(pool)
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.SUCCEEDED
    assert await _snapshot(pool) == before
    assert all(
        counts.get("created", 0) == counts.get("updated", 0) == counts.get("deactivated", 0) == 0
        for name, counts in outcome.counts.items()
        if name != "data_warnings"
    )
    # The counts are honest: every live link stands unchanged, every warning is seen again.
    for table, active in (
        ("user_schools", "deleted_at IS NULL"),
        ("section_teachers", "deleted_at IS NULL"),
        ("contact_relationships", "deleted_at IS NULL"),
        ("enrollments", "ended_at IS NULL"),
    ):
        holding = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {active}")
        assert holding > 0
        assert outcome.counts[table]["unchanged"] == holding, table
    open_warnings = await pool.fetchval(
        "SELECT count(*) FROM data_warnings WHERE resolved_at IS NULL"
    )
    assert outcome.counts["data_warnings"] == {
        "opened": 0,
        "seen_again": open_warnings,
        "resolved": 0,
    }
    assert outcome.warnings == first.warnings == open_warnings
    assert first.counts["data_warnings"]["opened"] == open_warnings


async def test_changes_are_mirrored_with_history(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    assert (await _sync(deps)).status is RunStatus.SUCCEEDED
    first_enrollment = await pool.fetchrow(
        "SELECT * FROM enrollments WHERE section_id = 'sec1' AND student_id = 's2'"
    )

    # Term roll-over: the term and course come back with new ids, sections point at them.
    clever.delete("terms", "term1")
    clever.put("terms", {"id": "term1b", "name": "Fall", "start_date": "2024-08-20"})
    clever.delete("courses", "crs1")
    clever.put("courses", {"id": "crs1b", "name": "Algebra I"})
    # A student moves school; a section loses a student; a teacher is renamed; a user leaves.
    clever.put("users", user("s2", "student", first="Li", last="Wei", school="sch2", grade="1",
                             last_modified="2024-02-01T00:00:00.000Z"))  # fmt: skip
    clever.put("users", user("t2", "teacher", first="Alan", last="Turing-Smith", email="alan@x.org",
                             school="sch2", last_modified="2024-02-01T00:00:00.000Z"))  # fmt: skip
    clever.delete("users", "s3")
    clever.put(
        "sections",
        section("sec1", name="Algebra 1A", school="sch1", term="term1b", course="crs1b",
                teachers=["t1", *(f"t{n}" for n in range(3, 12))], students=["s1"],
                last_modified="2024-02-01T00:00:00.000Z"),
    )  # fmt: skip
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error

    terms = await pool.fetch("SELECT id, deleted_at IS NULL AS active FROM terms ORDER BY id")
    assert [tuple(row) for row in terms] == [("term1", False), ("term1b", True), ("term2", True)]
    sec1 = await pool.fetchrow("SELECT * FROM sections WHERE id = 'sec1'")
    assert sec1 is not None and (sec1["term_id"], sec1["course_id"]) == ("term1b", "crs1b")
    assert sec1["deleted_at"] is None
    ended = await pool.fetchrow(
        "SELECT * FROM enrollments WHERE section_id = 'sec1' AND student_id = 's2'"
    )
    assert first_enrollment is not None and ended is not None
    assert ended["started_at"] == first_enrollment["started_at"] and ended["ended_at"] is not None
    moved = await pool.fetch(
        "SELECT school_id, is_primary FROM user_schools WHERE user_id = 's2' AND deleted_at IS NULL"
    )
    assert [tuple(row) for row in moved] == [("sch2", True)]
    assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM users WHERE id = 's3'")
    assert await pool.fetchval("SELECT name_last FROM users WHERE id = 't2'") == "Turing-Smith"
    assert outcome.counts["users"]["deactivated"] == 1
    assert outcome.counts["enrollments"]["deactivated"] == 1

    # The student comes back, and rejoins the section: a new stay, the old one kept.
    clever.put(
        "users", user("s3", "student", first="Neo", last="Nameless", school="sch2", grade="10")
    )
    clever.put(
        "sections",
        section("sec1", name="Algebra 1A", school="sch1", term="term1b", course="crs1b",
                teachers=["t1"], students=["s1", "s2"], last_modified="2024-03-01T00:00:00.000Z"),
    )  # fmt: skip
    assert (await _sync(deps)).status is RunStatus.SUCCEEDED
    assert await pool.fetchval("SELECT deleted_at IS NULL FROM users WHERE id = 's3'")
    stays = await pool.fetch(
        "SELECT ended_at IS NULL AS open FROM enrollments"
        " WHERE section_id = 'sec1' AND student_id = 's2' ORDER BY started_at"
    )
    assert [row["open"] for row in stays] == [False, True]
    co_teachers = await pool.fetchval(
        "SELECT count(*) FROM section_teachers WHERE section_id = 'sec1' AND deleted_at IS NULL"
    )
    assert co_teachers == 1


async def test_an_older_event_never_overwrites_a_newer_version_but_a_full_sync_does(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    clever.add_event("users.created", {"id": "t0"})  # the cursor the full sync notes
    clever.put(
        "users",
        user("t2", "teacher", last="Newer", school="sch2", last_modified="2024-06-01T00:00:00Z"),
    )
    assert (await _sync(deps)).status is RunStatus.SUCCEEDED
    older = user("t2", "teacher", last="Older", school="sch2", last_modified="2024-05-01T00:00:00Z")
    clever.add_event("users.updated", older)
    incremental = await sync_district(deps, DISTRICT_ID, mode=RunMode.INCREMENTAL)
    assert incremental.status is RunStatus.SUCCEEDED
    assert incremental.counts["events"] == {"applied": 1}
    assert await pool.fetchval("SELECT name_last FROM users WHERE id = 't2'") == "Newer"

    # Clever's snapshot serves the older version (its SIS went back), and a student that
    # late events left deleted with a newer `last_modified`: a full sync converges to both.
    clever.put("users", older)
    await pool.execute(
        "UPDATE users SET deleted_at = now(), source_last_modified = '2030-01-01' WHERE id = 's2'"
    )
    assert (await _sync(deps)).status is RunStatus.SUCCEEDED
    rows = await pool.fetch(
        "SELECT id, name_last, deleted_at IS NULL AS active, source_last_modified < '2030-01-01'"
        " AS from_clever FROM users WHERE id IN ('t2', 's2') ORDER BY id"
    )
    assert [tuple(row) for row in rows] == [
        ("s2", "Wei", True, True),
        ("t2", "Older", True, True),
    ]


async def test_warnings_resolve_when_the_data_is_fixed(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    await _sync(deps)
    assert ("users", "s1", "invalid_email") in await _warnings(pool)
    clever.records["users"]["s1"]["email"] = "zoe@x.org"
    clever.records["users"]["s1"]["last_modified"] = "2024-02-01T00:00:00Z"
    outcome = await _sync(deps)
    assert ("users", "s1", "invalid_email") not in await _warnings(pool)
    assert outcome.counts["data_warnings"]["resolved"] == 1
    resolved = await pool.fetchrow(
        "SELECT resolved_at, resolved_run_id FROM data_warnings"
        " WHERE record_id = 's1' AND code = 'invalid_email'"
    )
    assert resolved is not None and resolved["resolved_run_id"] == outcome.run_id


async def test_a_record_without_id_is_skipped_and_the_rest_synced(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    clever.put("users", {"id": "zz-broken", "name": "not an object", "roles": "student"})
    clever.records["users"]["zz-no-id"] = {"name": {"first": "No", "last": "Id"}}
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = 'zz-broken'") == 1
    assert ("users", None, "missing_id") in await _warnings(pool)


async def test_mass_unshare_is_held_until_approved(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    await _sync(deps)
    before = await _snapshot(pool)
    for user_id in [u for u in clever.records["users"] if u.startswith("t")][:8]:
        clever.delete("users", user_id)
    held = await _sync(deps)
    assert held.status is RunStatus.HELD
    assert held.held_reason is not None and "8 of" in held.held_reason
    assert await _snapshot(pool) == before  # nothing applied

    rejected_run = held.run_id
    approved = await decide_held_run(
        pool, rejected_run, approve=True, decided_by="test", options=deps.options
    )
    assert approved.status is RunStatus.SUCCEEDED
    assert await pool.fetchval("SELECT count(*) FROM users WHERE deleted_at IS NOT NULL") == 8
    run = await pool.fetchrow("SELECT status, decided_by FROM sync_runs WHERE id = $1", held.run_id)
    assert run is not None and tuple(run) == ("succeeded", "test")


async def test_a_rejected_run_applies_nothing(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    await _sync(deps)
    before = await _snapshot(pool)
    for section_id in ("sec1", "sec2"):
        clever.delete("sections", section_id)
    held = await _sync(deps)
    assert held.status is RunStatus.HELD
    rejected = await decide_held_run(
        pool, held.run_id, approve=False, decided_by="test", options=deps.options
    )
    assert rejected.status is RunStatus.REJECTED
    assert await _snapshot(pool) == before
    staged = await pool.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'roster_staging'"
    )
    assert staged == 0


async def test_concurrent_runs_of_a_district_coalesce(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    outcomes = await asyncio.gather(*(_sync(deps) for _ in range(3)))
    statuses = sorted(outcome.status.value for outcome in outcomes)
    assert statuses.count("succeeded") >= 1
    assert set(statuses) <= {"succeeded", "coalesced"}
    assert await pool.fetchval("SELECT count(*) FROM users") == len(clever.records["users"])


Stage = tuple[Any, str]

APPLY_STAGES: list[Stage] = [
    (merge, "_skip_foreign_ids"),
    (merge, "_drop_foreign_references"),
    (merge, "_merge_entity"),
    (merge, "_deactivate"),
    (merge, "_refresh_section_display_names"),
    (merge, "_stage_reference_warnings"),
    (merge, "_merge_links"),
    (merge, "_merge_enrollments"),
    (merge, "_merge_warnings"),
    (cursors, "record_full_sync"),
]


@pytest.mark.parametrize(("module", "name"), APPLY_STAGES, ids=[name for _, name in APPLY_STAGES])
async def test_a_failure_while_applying_leaves_the_mirror_untouched(
    clever: FakeClever,
    deps: SyncDeps,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
) -> None:
    seed(clever)
    await _sync(deps)
    before = await _snapshot(pool)
    clever.delete("users", "s2")
    clever.put("schools", {"id": "sch4", "name": "West"})
    clever.records["sections"]["sec1"]["students"] = ["s1", "s3"]
    clever.records["sections"]["sec1"]["last_modified"] = "2024-09-01T00:00:00Z"

    real: Callable[..., Awaitable[Any]] = getattr(module, name)

    async def fail_after(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise ConnectionResetError("database connection lost")

    monkeypatch.setattr(module, name, fail_after)
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.FAILED
    assert "connection lost" in (outcome.error or "")
    assert await _snapshot(pool) == before

    monkeypatch.setattr(module, name, real)
    assert (await _sync(deps)).status is RunStatus.SUCCEEDED
    assert await pool.fetchval("SELECT count(*) FROM schools WHERE id = 'sch4'") == 1
    staged = await pool.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'roster_staging'"
    )
    assert staged == 0


async def test_a_failure_after_the_merge_committed_leaves_the_run_succeeded(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's success is recorded in the merge's transaction: whatever happens after the
    commit (a crash while dropping staging, here) cannot make an applied run read failed."""
    seed(clever)

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("database connection lost")

    monkeypatch.setattr(Staging, "drop", crash)
    in_merge_transaction: list[bool] = []
    real_finish = runs.finish_run

    async def finish_run(connection: asyncpg.Connection, *args: Any, **kwargs: Any) -> bool:
        if args[1] is RunStatus.SUCCEEDED:
            in_merge_transaction.append(connection.is_in_transaction())
        return await real_finish(connection, *args, **kwargs)

    monkeypatch.setattr(runs, "finish_run", finish_run)
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.SUCCEEDED
    assert in_merge_transaction == [True]
    run = await pool.fetchrow("SELECT * FROM sync_runs WHERE id = $1", outcome.run_id)
    assert run is not None
    assert (run["status"], run["error"]) == ("succeeded", None)
    assert run["counts"]["users"]["created"] == len(clever.records["users"])
    assert await pool.fetchval("SELECT count(*) FROM users") == len(clever.records["users"])


async def test_a_clever_failure_mid_fetch_fails_the_run_cleanly(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    seed(clever)
    await _sync(deps)
    before = await _snapshot(pool)

    def reject_sections(request: Any) -> None:
        if request.url.path.endswith("/sections"):
            raise ConnectionError("peer went away")

    clever.before_answer = reject_sections
    outcome = await _sync(deps)
    assert outcome.status is RunStatus.FAILED
    assert await _snapshot(pool) == before
    run = await pool.fetchrow(
        "SELECT status, error, finished_at FROM sync_runs WHERE id = $1", outcome.run_id
    )
    assert run is not None and run["status"] == "failed" and run["finished_at"] is not None
    assert "fake-district-token" not in (run["error"] or "")


async def test_unchanged_sections_follow_their_students_leaving_and_coming(
    clever: FakeClever, deps: SyncDeps, pool: asyncpg.Pool
) -> None:
    """Sections Clever did not change still lose a student who left, and gain one shared
    later, although a re-sync skips unchanged records."""
    seed(clever)
    await _sync(deps)
    open_stays = (
        "SELECT student_id FROM enrollments WHERE section_id = $1 AND ended_at IS NULL ORDER BY 1"
    )
    student = clever.records["users"]["s2"]
    clever.delete("users", "s2")
    await _sync(deps)
    assert [r["student_id"] for r in await pool.fetch(open_stays, "sec1")] == ["s1"]
    assert ("sections", "sec1", "unknown_student") in await _warnings(pool)

    clever.put("users", student)
    clever.put("users", user("ghost", "student", first="Now", last="Shared", grade="3"))
    await _sync(deps)
    assert [r["student_id"] for r in await pool.fetch(open_stays, "sec1")] == ["s1", "s2"]
    assert [r["student_id"] for r in await pool.fetch(open_stays, "sec2")] == ["ghost", "s1"]
    assert ("sections", "sec1", "unknown_student") not in await _warnings(pool)
    assert ("sections", "sec2", "unknown_student") not in await _warnings(pool)
    stays = await pool.fetchval(
        "SELECT count(*) FROM enrollments WHERE section_id = 'sec1' AND student_id = 's2'"
    )
    assert stays == 2
