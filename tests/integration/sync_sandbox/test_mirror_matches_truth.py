"""The real full sync against sandbox districts: the mirror must equal the generator's truth.

One S district (synced once for the module) checks counts, relationships and every edge case
at scale; tiny districts of their own check changes, re-syncs and the mass-change guard.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.settings import Settings
from app.sync.full import decide_held_run
from app.sync.runs import RunStatus
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox
from sandbox.truth import EDGE_CASES
from tests.integration.sync_sandbox.support import (
    SyncedDistrict,
    assert_mirror_matches_truth,
    open_enrollments,
    open_warnings,
    run_row,
    sandbox_settings,
    snapshot_rows,
    staging_tables,
    sync_deps,
    sync_ok,
    sync_once,
)

SENSITIVE_FIELDS = (
    "iep_status",
    "ell_status",
    "frl_status",
    "section_504_status",
    "gifted_status",
    "disability",
)


def _clean(value: str) -> str:
    """What the mirror stores for a name: trimmed and NFC-normalized, never cut."""
    return unicodedata.normalize("NFC", value.strip())


def _record(district: SandboxDistrict, record_id: str) -> dict[str, Any]:
    record = district.truth.record(record_id)
    assert record is not None, f"the sandbox does not serve {record_id}"
    return record


async def _user(pool: asyncpg.Pool, user_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    assert row is not None, f"user {user_id} is not mirrored"
    return row


async def _section(pool: asyncpg.Pool, section_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM sections WHERE id = $1", section_id
    )
    assert row is not None, f"section {section_id} is not mirrored"
    return row


async def _users_mentioning(pool: asyncpg.Pool, *, district_id: str) -> dict[str, int]:
    """How many users rows hold each sensitive field name anywhere (columns, raw, details)."""
    rows = await pool.fetch(
        "SELECT field, count(*) AS users FROM"
        " (SELECT t::text AS body FROM users t WHERE district_id = $1) u,"
        " unnest($2::text[]) AS field WHERE strpos(u.body, '\"' || field || '\"') > 0"
        " GROUP BY field",
        district_id,
        list(SENSITIVE_FIELDS),
    )
    return {row["field"]: row["users"] for row in rows}


# --- an S district, synced once -----------------------------------------------------------


async def test_s_district_counts_and_relationships_equal_the_truth(
    synced_s: SyncedDistrict, mirror_pool: asyncpg.Pool
) -> None:
    mirrored = await assert_mirror_matches_truth(mirror_pool, district=synced_s.district)

    counts = synced_s.district.truth.counts()
    assert mirrored.counts["students"] == counts["students"] == 10_000
    assert mirrored.counts["sections"] == counts["sections"] > 2000
    assert synced_s.outcome.counts["users"]["created"] == counts["users"]
    assert synced_s.outcome.counts["sections"]["created"] == counts["sections"]
    # Several co-teachers and several sections per student are really there to compare.
    assert max(len(teachers) for teachers in mirrored.section_teachers.values()) == 10
    assert sum(len(s) for s in mirrored.student_sections.values()) > 4 * counts["students"]


async def test_s_district_links_span_schools(
    synced_s: SyncedDistrict, mirror_pool: asyncpg.Pool
) -> None:
    district = synced_s.district
    truth = district.truth
    edge = truth.edge_cases

    # A student's sections come from every school they take a class in.
    for key, school_count in (("student_in_three_schools", 3), ("student_in_two_schools", 2)):
        student_id = edge[key]
        rows = await mirror_pool.fetch(
            "SELECT s.id, s.school_id FROM enrollments e JOIN sections s ON s.id = e.section_id"
            " WHERE e.student_id = $1 AND e.ended_at IS NULL",
            student_id,
        )
        assert {row["id"] for row in rows} == set(truth.student_section_ids(student_id))
        primary = (await _user(mirror_pool, student_id))["primary_school_id"]
        schools = {row["school_id"] for row in rows} | {primary}
        assert schools == set(truth.student_school_ids(student_id))
        assert len(schools) >= school_count

    # A teacher teaching in another school than their own still has those students.
    section_id = edge["section_teacher_other_school"]
    teacher_id = _record(district, section_id)["teacher"]
    students = await mirror_pool.fetch(
        "SELECT DISTINCT e.student_id FROM section_teachers t"
        " JOIN enrollments e ON e.section_id = t.section_id AND e.ended_at IS NULL"
        " WHERE t.teacher_id = $1 AND t.deleted_at IS NULL",
        teacher_id,
    )
    assert {row["student_id"] for row in students} == set(truth.teacher_student_ids(teacher_id))
    assert set(truth.section_student_ids(section_id)) <= {row["student_id"] for row in students}

    # Staff with several schools and no primary one.
    staff_id = edge["staff_multi_school"]
    links = await mirror_pool.fetch(
        "SELECT school_id, is_primary FROM user_schools"
        " WHERE user_id = $1 AND deleted_at IS NULL ORDER BY 1",
        staff_id,
    )
    assert [row["school_id"] for row in links] == sorted(truth.user_school_ids(staff_id))
    assert len(links) >= 2
    assert [row["is_primary"] for row in links] == [False] * len(links)

    # A contact of several students, relationships stored as Clever words them.
    for key in ("contact_several_students", "contact_odd_relationship"):
        contact_id = edge[key]
        rows = await mirror_pool.fetch(
            "SELECT student_id, relationship, type FROM contact_relationships"
            " WHERE contact_id = $1 AND deleted_at IS NULL",
            contact_id,
        )
        relationships = _record(district, contact_id)["roles"]["contact"]["student_relationships"]
        expected = {
            (item["student"], item["relationship"] or None, item["type"] or None)
            for item in relationships
            if truth.is_shared(item["student"])
        }
        assert {tuple(row) for row in rows} == expected
    assert len(truth.contact_student_ids(edge["contact_several_students"])) >= 2


async def test_s_district_unshared_links_are_skipped_with_a_warning(
    synced_s: SyncedDistrict, mirror_pool: asyncpg.Pool
) -> None:
    district = synced_s.district
    truth = district.truth
    warnings = await open_warnings(mirror_pool, district_id=district.id)

    section_id = truth.edge_cases["section_unshared_student"]
    listed = truth.section_student_ids(section_id, include_unshared=True)
    shared = truth.section_student_ids(section_id)
    unshared = sorted(set(listed) - set(shared))
    assert unshared
    enrolled = await mirror_pool.fetch(
        "SELECT student_id FROM enrollments WHERE section_id = $1", section_id
    )
    assert {row["student_id"] for row in enrolled} == set(shared)
    assert (await _section(mirror_pool, section_id))["deleted_at"] is None
    assert "unknown_student" in warnings[("sections", section_id)]
    detail = await mirror_pool.fetchval(
        "SELECT detail FROM data_warnings WHERE record_id = $1 AND code = 'unknown_student'",
        section_id,
    )
    assert all(student_id in detail for student_id in unshared)

    section_id = truth.edge_cases["section_unshared_teacher"]
    teachers = await mirror_pool.fetch(
        "SELECT teacher_id FROM section_teachers WHERE section_id = $1 ORDER BY position",
        section_id,
    )
    assert [row["teacher_id"] for row in teachers] == truth.section_teacher_ids(section_id)
    assert len(truth.section_teacher_ids(section_id, include_unshared=True)) > len(teachers)
    assert "unknown_teacher" in warnings[("sections", section_id)]


async def test_s_district_every_edge_case_is_stored_and_warned(
    synced_s: SyncedDistrict, mirror_pool: asyncpg.Pool
) -> None:
    district = synced_s.district
    edge = district.truth.edge_cases
    assert set(EDGE_CASES) <= set(edge), set(EDGE_CASES) - set(edge)
    warnings = await open_warnings(mirror_pool, district_id=district.id)

    def user_warned(key: str, code: str) -> None:
        assert code in warnings.get(("users", edge[key]), set()), (key, code)

    def section_warned(key: str, code: str) -> None:
        assert code in warnings.get(("sections", edge[key]), set()), (key, code)

    # An email without @ is kept as given, flagged invalid.
    record = _record(district, edge["email_without_at"])
    user = await _user(mirror_pool, edge["email_without_at"])
    assert (user["email"], user["email_valid"]) == (record["email"], False)
    user_warned("email_without_at", "invalid_email")
    assert (await _user(mirror_pool, edge["missing_email"]))["email"] is None
    user_warned("missing_email", "missing_email")

    # Over-long values are stored whole and warned about.
    long_last = _record(district, edge["long_string"])["name"]["last"]
    stored = (await _user(mirror_pool, edge["long_string"]))["name_last"]
    assert stored == _clean(long_last) and len(stored) > 255
    user_warned("long_string", "value_too_long")
    long_name = _record(district, edge["long_section_name"])["name"]
    stored = (await _section(mirror_pool, edge["long_section_name"]))["name"]
    assert stored == _clean(long_name) and len(stored) > 255
    section_warned("long_section_name", "value_too_long")

    # Missing or invalid values: the record is stored, the problem warned.
    user_warned("student_missing_name", "missing_name")
    assert (await _user(mirror_pool, edge["student_missing_grade"]))["grade"] is None
    user_warned("student_missing_grade", "missing_grade")
    assert (await _user(mirror_pool, edge["invalid_dob"]))["dob"] is None
    user_warned("invalid_dob", "invalid_date")
    unnamed = await _section(mirror_pool, edge["section_no_name"])
    assert unnamed["name"] is None and unnamed["display_name"]
    section_warned("section_no_name", "missing_name")
    assert (await _section(mirror_pool, edge["section_no_term"]))["term_id"] is None
    section_warned("section_no_term", "missing_term")
    assert (await _section(mirror_pool, edge["section_no_course"]))["course_id"] is None
    section_warned("section_no_course", "missing_course")
    for key in ("section_no_subject", "section_no_grade"):
        assert (await _section(mirror_pool, edge[key]))["deleted_at"] is None

    # Duplicate section names in a school: both stored, both warned.
    duplicate = _record(district, edge["duplicate_section_name"])
    peers = await mirror_pool.fetch(
        "SELECT id FROM sections WHERE school_id = $1 AND name = $2 AND deleted_at IS NULL",
        duplicate["school"],
        _clean(duplicate["name"]),
    )
    assert len(peers) >= 2
    for peer in peers:
        assert "duplicate_section_name" in warnings[("sections", peer["id"])]

    # A teacher who is also a district admin or staff member: both users kept.
    for teacher_key, other_key, role in (
        ("teacher_admin_same_email", "district_admin_same_email_as_teacher", "district_admin"),
        ("teacher_staff_same_email", "staff_same_email_as_teacher", "staff"),
    ):
        teacher = await _user(mirror_pool, edge[teacher_key])
        other = await _user(mirror_pool, edge[other_key])
        assert teacher["id"] != other["id"]
        assert teacher["email_normalized"] == other["email_normalized"] is not None
        assert (teacher["roles"], other["roles"]) == (["teacher"], [role])
        assert teacher["deleted_at"] is None and other["deleted_at"] is None

    # Unknown fields are kept in raw; preferred names are mirrored.
    for key, entity in (("unknown_fields_user", "users"), ("unknown_fields_section", "sections")):
        record = _record(district, edge[key])
        raw = await mirror_pool.fetchval(f"SELECT raw FROM {entity} WHERE id = $1", edge[key])
        known = {"id", "district", "email", "name", "created", "last_modified", "roles"}
        extra = {k: v for k, v in record.items() if k not in known and k not in raw}
        assert not extra, f"{entity} {edge[key]} lost {sorted(extra)}"
    preferred = _record(district, edge["student_preferred_name"])["roles"]["student"]
    stored_preferred = (await _user(mirror_pool, edge["student_preferred_name"]))[
        "preferred_first_name"
    ]
    assert stored_preferred == _clean(preferred["preferred_name"]["first"])

    # Ten teachers on a section, in order; people without sections have no links.
    teachers = await mirror_pool.fetch(
        "SELECT teacher_id, position, is_primary FROM section_teachers"
        " WHERE section_id = $1 AND deleted_at IS NULL ORDER BY position",
        edge["section_ten_teachers"],
    )
    assert [row["teacher_id"] for row in teachers] == district.truth.section_teacher_ids(
        edge["section_ten_teachers"]
    )
    assert len(teachers) == 10
    assert [row["is_primary"] for row in teachers] == [True] + [False] * 9
    for key, sql in (
        ("student_no_sections", "SELECT count(*) FROM enrollments WHERE student_id = $1"),
        ("teacher_no_sections", "SELECT count(*) FROM section_teachers WHERE teacher_id = $1"),
    ):
        assert await mirror_pool.fetchval(sql, edge[key]) == 0, key


async def test_sensitive_fields_are_not_stored_when_disabled(
    synced_s: SyncedDistrict, mirror_pool: asyncpg.Pool
) -> None:
    district = synced_s.district
    student_id = district.truth.edge_cases["student_sensitive_fields"]
    assert "disability" in _record(district, student_id)["roles"]["student"]  # served in v3.1

    stored = await mirror_pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND sensitive IS NOT NULL",
        district.id,
    )
    assert stored == 0
    assert await _users_mentioning(mirror_pool, district_id=district.id) == {}


async def test_sensitive_fields_are_stored_when_enabled(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(
            settings, sandbox=tiny_sandbox, district=district, sensitive_fields_enabled=True
        ),
        pool=mirror_pool,
    )
    await sync_ok(deps, district=district)

    student_id = district.truth.edge_cases["student_sensitive_fields"]
    served = _record(district, student_id)["roles"]["student"]
    sensitive = (await _user(mirror_pool, student_id))["sensitive"]
    assert sensitive is not None
    assert sensitive["disability"] == served["disability"]
    assert sensitive["iep_status"] == served["iep_status"]
    assert sensitive["frl_status"] == served["frl_status"]
    flags = {"Y": True, "N": False}
    for field in ("ell_status", "section_504_status", "gifted_status"):
        assert sensitive.get(field) == flags.get(served[field]), field
    with_fields = await mirror_pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND sensitive IS NOT NULL",
        district.id,
    )
    assert with_fields == district.truth.counts()["students"]
    assert set(await _users_mentioning(mirror_pool, district_id=district.id)) == set(
        SENSITIVE_FIELDS
    )


# --- tiny districts: changes, re-syncs, the guard -------------------------------------------


@dataclass(frozen=True)
class ChangeSet:
    """What `_change_the_district` did, for the assertions."""

    renamed_teacher: str
    deleted_student: str
    deleted_section: str
    moved_student: str
    new_school: str
    emptied_section: str
    removed_students: list[str]
    unshared: int
    remap: dict[str, str]


def _change_the_district(district: SandboxDistrict) -> ChangeSet:
    """A district's SIS changes between two syncs: everything a school year brings."""
    truth = district.truth
    unshared = district.unshare("users", 0.1, role="student")
    teacher_id = truth.ids("users", "teacher")[0]
    district.update(teacher_id, {"name": {"last": "Renamed-Teacher"}})
    deleted_section = next(
        s for s in reversed(truth.ids("sections")) if truth.section_student_ids(s)
    )
    district.delete(deleted_section)

    students = [s for s in truth.ids("users", "student") if truth.student_section_ids(s)]
    deleted_student = students[0]
    district.delete(deleted_student)
    moved_student = students[1]
    school = _record(district, moved_student)["roles"]["student"]["school"]
    new_school = next(s for s in truth.ids("schools") if s != school)
    district.move_student(moved_student, new_school)

    emptied_section = next(
        s
        for s in truth.ids("sections")
        if len(truth.section_student_ids(s)) >= 3 and s != deleted_section
    )
    removed = truth.section_student_ids(emptied_section)[:2]
    district.remove_students(emptied_section, removed)
    remap = district.roll_over_terms()
    return ChangeSet(
        renamed_teacher=teacher_id,
        deleted_student=deleted_student,
        deleted_section=deleted_section,
        moved_student=moved_student,
        new_school=new_school,
        emptied_section=emptied_section,
        removed_students=removed,
        unshared=unshared,
        remap=remap,
    )


async def test_changes_are_mirrored_with_history_and_an_unchanged_resync_writes_nothing(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=mirror_pool
    )
    await sync_ok(deps, district=district)
    await assert_mirror_matches_truth(mirror_pool, district=district)
    enrolled_before = await open_enrollments(mirror_pool, district_id=district.id)
    old_terms = set(district.truth.ids("terms"))
    old_courses = set(district.truth.ids("courses"))
    term_and_course = {
        s: (_record(district, s).get("term_id"), _record(district, s).get("course"))
        for s in district.truth.ids("sections")
    }

    changes = _change_the_district(district)
    assert changes.unshared > 0
    outcome = await sync_ok(deps, district=district)
    await assert_mirror_matches_truth(mirror_pool, district=district)
    assert outcome.counts["users"]["deactivated"] == changes.unshared + 1
    assert outcome.counts["sections"]["deactivated"] == 1

    # Renamed teacher, moved student, deleted records (soft-deleted, never removed).
    teacher = await _user(mirror_pool, changes.renamed_teacher)
    assert teacher["name_last"] == "Renamed-Teacher"
    moved = await _user(mirror_pool, changes.moved_student)
    assert moved["primary_school_id"] == changes.new_school
    assert (await _user(mirror_pool, changes.deleted_student))["deleted_at"] is not None
    assert (await _section(mirror_pool, changes.deleted_section))["deleted_at"] is not None

    # Ended enrollments keep their start and get an end; continuing ones are untouched.
    enrolled_after = await open_enrollments(mirror_pool, district_id=district.id)
    ended = set(enrolled_before) - set(enrolled_after)
    assert {(changes.emptied_section, s) for s in changes.removed_students} <= ended
    assert any(student == changes.deleted_student for _, student in ended)
    assert any(section == changes.deleted_section for section, _ in ended)
    for section_id, student_id in ended:
        rows = await mirror_pool.fetch(
            "SELECT * FROM enrollments WHERE section_id = $1 AND student_id = $2",
            section_id,
            student_id,
        )
        assert len(rows) == 1
        before = enrolled_before[(section_id, student_id)]
        assert rows[0]["id"] == before["id"]
        assert rows[0]["started_at"] == before["started_at"]
        assert rows[0]["ended_at"] is not None and rows[0]["ended_at"] >= before["started_at"]
    for key in set(enrolled_before) & set(enrolled_after):
        assert tuple(enrolled_after[key]) == tuple(enrolled_before[key])

    # Term roll-over: old terms and courses inactive, their sections active on the new ids.
    for collection, old_ids in (("terms", old_terms), ("courses", old_courses)):
        rows = await mirror_pool.fetch(
            f"SELECT id, deleted_at IS NULL AS active FROM {collection} WHERE id = ANY($1)",
            list(old_ids),
        )
        assert {row["id"] for row in rows} == old_ids
        assert not any(row["active"] for row in rows), collection
    for section_id, (old_term, old_course) in term_and_course.items():
        if section_id == changes.deleted_section:
            continue
        section = await _section(mirror_pool, section_id)
        assert section["deleted_at"] is None
        assert section["term_id"] == (changes.remap.get(old_term, old_term) if old_term else None)
        assert section["course_id"] == (
            changes.remap.get(old_course, old_course) if old_course else None
        )
    assert any(term in old_terms for term, _ in term_and_course.values())

    # Nothing changed since: a third sync writes no row at all.
    before = await snapshot_rows(mirror_pool, district_id=district.id)
    outcome = await sync_ok(deps, district=district)
    assert await snapshot_rows(mirror_pool, district_id=district.id) == before
    written = {
        name: counts
        for name, counts in outcome.counts.items()
        if any(value for key, value in counts.items() if key not in ("unchanged", "seen_again"))
    }
    assert written == {}


async def test_a_mass_unshare_is_held_until_approved(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=mirror_pool
    )
    await sync_ok(deps, district=district)
    users_before = district.truth.counts()["users"]
    before = await snapshot_rows(mirror_pool, district_id=district.id)

    unshared = district.unshare("users", 0.8, role="student")
    assert unshared / users_before > 0.25
    held = await sync_once(deps, district=district)
    assert held.status is RunStatus.HELD, held.error
    assert held.held_reason is not None and f"{unshared} of {users_before} users" in (
        held.held_reason
    )
    assert await snapshot_rows(mirror_pool, district_id=district.id) == before
    assert (await run_row(mirror_pool, held.run_id))["status"] == "held"
    assert await staging_tables(mirror_pool, run_id=held.run_id)  # kept for the decision

    approved = await decide_held_run(
        mirror_pool, held.run_id, approve=True, decided_by="test", options=deps.options
    )
    assert approved.status is RunStatus.SUCCEEDED
    await assert_mirror_matches_truth(mirror_pool, district=district)
    inactive = await mirror_pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NOT NULL",
        district.id,
    )
    assert inactive == unshared
    run = await run_row(mirror_pool, held.run_id)
    assert (run["status"], run["decided_by"]) == ("succeeded", "test")
    assert await staging_tables(mirror_pool, run_id=held.run_id) == []
