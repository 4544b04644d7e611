"""Reads after a district changed: inactive records, history, `updated_since`, current terms.

A tiny district of this module's own is synced, changed in the sandbox (a student and a
section deleted, students leaving a section, a teacher renamed, term dates moved so that one
term is current and one has no dates) and synced again. Its rows are removed when the module
ends, so the other modules' counts stay those of the package's districts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
import httpx
import pytest

from app.settings import Settings
from sandbox.config import DistrictConfig
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.integration.api.conftest import Keys
from tests.integration.api.reads_support import (
    TruthIndex,
    assert_section_is,
    assert_user_is,
    buckets_of,
    expected_buckets,
    get_json,
    get_problem,
    ids,
    role_details,
    walk,
)
from tests.integration.api.sync_support import remove_district
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps, sync_ok


@dataclass(frozen=True)
class Changes:
    """What `_change` did to the district."""

    renamed_teacher: str
    deleted_student: str
    # The deleted student's school and sections, and the deleted section's students, before.
    deleted_student_school: str
    deleted_student_sections: list[str]
    deleted_section: str
    deleted_section_students: list[str]
    emptied_section: str
    left_students: list[str]
    emptied_section_students: list[str]
    # A student with sections in a current term, a past one, an undated one and none.
    bucketed_student: str
    current_term: str
    undated_term: str
    unset_term_section: str


@dataclass(frozen=True)
class Changed:
    """The district after its second sync."""

    district: SandboxDistrict
    index: TruthIndex
    changes: Changes
    # Just before the second sync.
    changed_at: datetime
    today: date

    @property
    def id(self) -> str:
        return self.district.id


@pytest.fixture(scope="module")
def tiny_sandbox() -> Iterator[RunningSandbox]:
    """A tiny district of the module's own, which it changes. Its school year is two years
    back, so the terms the changes leave alone are past ones."""
    two_years_ago = date.today() - timedelta(days=730)
    config = SandboxConfig(districts=(DistrictConfig(size="tiny", seed=41, today=two_years_ago),))
    with run_in_thread(config) as running:
        yield running


def _change(district: SandboxDistrict, today: date) -> Changes:
    """What a district's SIS might do between two syncs."""
    truth = district.truth
    terms = truth.ids("terms")
    students = [s for s in truth.ids("users", "student") if truth.student_section_ids(s)]

    def term_of(section_id: str) -> str:
        record = truth.record(section_id)
        assert record is not None and record["term_id"]
        return str(record["term_id"])

    bucketed = next(
        s for s in students if {term_of(x) for x in truth.student_section_ids(s)} == set(terms)
    )
    mine = truth.student_section_ids(bucketed)
    by_term = {term: [s for s in mine if term_of(s) == term] for term in terms}
    # The term with most of the student's sections gives one of them up to "no term".
    undated, current, _past = sorted(terms, key=lambda t: -len(by_term[t]))
    unset_term_section = by_term[undated][-1]
    assert len(by_term[undated]) >= 2
    district.update(undated, {"start_date": None, "end_date": None})
    district.update(
        current,
        {
            "start_date": (today - timedelta(days=30)).isoformat(),
            "end_date": (today + timedelta(days=30)).isoformat(),
        },
    )
    district.update(unset_term_section, {"term_id": None})

    deleted_section = next(
        s
        for s in reversed(truth.ids("sections"))
        if s not in mine
        and truth.section_student_ids(s)
        and all((truth.record(s) or {}).get(ref) for ref in ("school", "course", "term_id"))
    )
    emptied_section = next(
        s
        for s in truth.ids("sections")
        if s not in mine and s != deleted_section and len(truth.section_student_ids(s)) >= 3
    )
    emptied_students = truth.section_student_ids(emptied_section)
    left_students = [s for s in emptied_students if s != bucketed][:2]
    deleted_student = next(s for s in students if s != bucketed and s not in emptied_students)
    changes = Changes(
        renamed_teacher=truth.ids("users", "teacher")[0],
        deleted_student=deleted_student,
        deleted_student_school=role_details(truth.record(deleted_student) or {})["school"],
        deleted_student_sections=truth.student_section_ids(deleted_student),
        deleted_section=deleted_section,
        deleted_section_students=truth.section_student_ids(deleted_section),
        emptied_section=emptied_section,
        left_students=left_students,
        emptied_section_students=emptied_students,
        bucketed_student=bucketed,
        current_term=current,
        undated_term=undated,
        unset_term_section=unset_term_section,
    )
    district.delete(deleted_section)
    district.remove_students(emptied_section, left_students)
    district.delete(deleted_student)
    district.update(changes.renamed_teacher, {"name": {"last": "Renamed"}})
    return changes


@pytest.fixture(scope="module")
async def changed(
    tiny_sandbox: RunningSandbox, settings: Settings, api_pool: asyncpg.Pool
) -> AsyncIterator[Changed]:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=api_pool
    )
    try:
        await sync_ok(deps, district=district)
        today: date = await api_pool.fetchval("SELECT current_date")
        changes = _change(district, today)
        changed_at: datetime = await api_pool.fetchval("SELECT now()")
        await sync_ok(deps, district=district)
        yield Changed(district, TruthIndex(district), changes, changed_at, today)
    finally:
        await remove_district(api_pool, district.id)


def _of(path: str, changed: Changed) -> dict[str, str]:
    """The district filter, for the collections (which take one)."""
    return {"district_id": changed.id} if path.count("/") == 2 else {}


# --- inactive records and history -----------------------------------------------------------


async def test_a_deleted_student_is_hidden_unless_inactive_records_are_asked_for(
    api: httpx.AsyncClient, keys: Keys, changed: Changed
) -> None:
    student_id = changed.changes.deleted_student
    await get_problem(api, f"/v1/users/{student_id}", keys.read, 404)
    await get_problem(api, f"/v1/users/{student_id}/sections", keys.read, 404)
    shown = await get_json(api, f"/v1/users/{student_id}", keys.read, include_inactive=True)
    assert (shown["id"], shown["active"]) == (student_id, False)
    assert datetime.fromisoformat(shown["deleted_at"]) >= changed.changed_at
    assert datetime.fromisoformat(shown["updated_at"]) >= changed.changed_at

    live = await walk(api, "/v1/users", keys.read, limit=10, district_id=changed.id)
    everyone = await walk(
        api, "/v1/users", keys.read, limit=10, district_id=changed.id, include_inactive=True
    )
    assert ids(live) == sorted(changed.index.truth.ids("users"))
    assert set(ids(everyone)) - set(ids(live)) == {student_id}
    assert ids(everyone) == sorted(ids(everyone))

    # A school's users and the users linked to a school, likewise.
    school_id = changed.changes.deleted_student_school
    for path, params in (
        (f"/v1/schools/{school_id}/users", {}),
        ("/v1/users", {"school_id": school_id}),
    ):
        live = await walk(api, path, keys.read, limit=1000, **params)
        everyone = await walk(api, path, keys.read, limit=1000, include_inactive=True, **params)
        assert set(ids(everyone)) - set(ids(live)) == {student_id}, path

    # Their former sections, which ended with them, are history.
    history = await get_json(
        api, f"/v1/users/{student_id}/sections", keys.read, include_inactive=True
    )
    assert ids(history["data"]) == changed.changes.deleted_student_sections
    assert {section["role"] for section in history["data"]} == {"student"}


async def test_a_deleted_section_is_hidden_unless_inactive_records_are_asked_for(
    api: httpx.AsyncClient, keys: Keys, changed: Changed
) -> None:
    section_id = changed.changes.deleted_section
    await get_problem(api, f"/v1/sections/{section_id}", keys.read, 404)
    shown = await get_json(api, f"/v1/sections/{section_id}", keys.read, include_inactive=True)
    assert (shown["id"], shown["active"]) == (section_id, False)
    assert shown["deleted_at"] is not None
    assert sorted(ids(shown["students"])) == sorted(changed.changes.deleted_section_students)

    for path in (
        "/v1/sections",
        f"/v1/schools/{shown['school_id']}/sections",
        f"/v1/terms/{shown['term_id']}/sections",
        f"/v1/courses/{shown['course_id']}/sections",
    ):
        live = await walk(api, path, keys.read, limit=5, **_of(path, changed))
        everything = await walk(
            api, path, keys.read, limit=5, include_inactive=True, **_of(path, changed)
        )
        assert section_id not in ids(live), path
        assert set(ids(everything)) - set(ids(live)) == {section_id}, path

    student_id = next(
        s for s in changed.changes.deleted_section_students if s != changed.changes.deleted_student
    )
    current = await walk(api, f"/v1/users/{student_id}/sections", keys.read, limit=100)
    assert ids(current) == changed.index.truth.student_section_ids(student_id)
    assert section_id not in ids(current)
    history = await walk(
        api, f"/v1/users/{student_id}/sections", keys.read, limit=100, include_inactive=True
    )
    assert set(ids(history)) == set(ids(current)) | {section_id}
    (former,) = [s for s in history if s["id"] == section_id]
    assert (former["active"], former["role"]) == (False, "student")


async def test_students_who_left_a_section_stay_in_its_history_only(
    api: httpx.AsyncClient, keys: Keys, changed: Changed
) -> None:
    truth = changed.index.truth
    changes = changed.changes
    section_id = changes.emptied_section
    now = await get_json(api, f"/v1/sections/{section_id}", keys.read)
    assert sorted(ids(now["students"])) == sorted(truth.section_student_ids(section_id))
    assert set(changes.left_students).isdisjoint(ids(now["students"]))
    history = await get_json(api, f"/v1/sections/{section_id}", keys.read, include_inactive=True)
    assert sorted(ids(history["students"])) == sorted(changes.emptied_section_students)
    assert_section_is(now, changed.index.record(section_id))

    for student_id in changes.left_students:
        current = await walk(api, f"/v1/users/{student_id}/sections", keys.read, limit=100)
        assert ids(current) == truth.student_section_ids(student_id)
        assert section_id not in ids(current)
        past = await walk(
            api, f"/v1/users/{student_id}/sections", keys.read, limit=100, include_inactive=True
        )
        assert ids(past) == sorted({*ids(current), section_id})
        by_term = await get_json(api, f"/v1/users/{student_id}/sections/by-term", keys.read)
        assert section_id not in {s for _, sections, _ in buckets_of(by_term) for s in sections}
        by_term = await get_json(
            api,
            f"/v1/users/{student_id}/sections/by-term",
            keys.read,
            include_inactive=True,
        )
        assert section_id in {s for _, sections, _ in buckets_of(by_term) for s in sections}
        teachers = await walk(api, f"/v1/students/{student_id}/teachers", keys.read, limit=100)
        assert ids(teachers) == truth.student_teacher_ids(student_id)

    teacher_id = truth.section_teacher_ids(section_id)[0]
    students = await walk(api, f"/v1/teachers/{teacher_id}/students", keys.read, limit=100)
    assert ids(students) == truth.teacher_student_ids(teacher_id)
    for student in students:
        assert section_id in student["section_ids"] or student["id"] not in ids(now["students"])
    renamed = await get_json(api, f"/v1/users/{changes.renamed_teacher}", keys.read)
    assert_user_is(renamed, changed.index.record(changes.renamed_teacher))
    assert renamed["name"]["last"] == "Renamed"


# --- what changed when ----------------------------------------------------------------------


async def test_updated_since_returns_what_the_second_sync_changed(
    api: httpx.AsyncClient, keys: Keys, changed: Changed
) -> None:
    changes = changed.changes
    since = changed.changed_at.isoformat()

    async def changed_ids(collection: str, *, include_inactive: bool = False) -> list[str]:
        rows = await walk(
            api,
            f"/v1/{collection}",
            keys.read,
            limit=3,
            district_id=changed.id,
            updated_since=since,
            include_inactive=include_inactive,
        )
        return ids(rows)

    assert await changed_ids("users") == [changes.renamed_teacher]
    assert await changed_ids("users", include_inactive=True) == sorted(
        [changes.renamed_teacher, changes.deleted_student]
    )
    assert await changed_ids("sections") == sorted(
        [changes.emptied_section, changes.unset_term_section]
    )
    assert await changed_ids("sections", include_inactive=True) == sorted(
        [changes.emptied_section, changes.unset_term_section, changes.deleted_section]
    )
    assert await changed_ids("terms") == sorted([changes.current_term, changes.undated_term])
    assert await changed_ids("schools") == []
    assert await changed_ids("courses") == []
    every_user = await walk(api, "/v1/users", keys.read, limit=1000, district_id=changed.id)
    assert len(every_user) > 50


# --- terms ------------------------------------------------------------------------------------


async def test_the_current_term_is_flagged_and_undated_terms_follow_dated_ones(
    api: httpx.AsyncClient, keys: Keys, changed: Changed
) -> None:
    changes = changed.changes
    student_id = changes.bucketed_student
    body = await get_json(api, f"/v1/users/{student_id}/sections/by-term", keys.read)
    sections = changed.index.truth.student_section_ids(student_id)
    expected = expected_buckets(changed.index, sections, changed.today)
    assert buckets_of(body) == expected

    # Past term, current term, undated term, no term: in that order, one of them current.
    assert [term_id for term_id, _, _ in expected][1:] == [
        changes.current_term,
        changes.undated_term,
        None,
    ]
    assert [current for _, _, current in expected] == [False, True, False, False]
    assert expected[-1][1] == {changes.unset_term_section}
    undated = body["data"][2]["term"]
    assert (undated["start_date"], undated["end_date"]) == (None, None)
    current = body["data"][1]["term"]
    assert current["start_date"] == (changed.today - timedelta(days=30)).isoformat()
