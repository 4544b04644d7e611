"""The roster reads answer what the sandbox's generator says the S district holds.

The package fixture mirrored the district with the real sync; every expectation here comes
from the sandbox's truth (`reads_support.TruthIndex`), never from the mirror's tables.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import (
    Json,
    TruthIndex,
    assert_active,
    assert_section_is,
    assert_user_is,
    buckets_of,
    clean,
    expected_buckets,
    expected_course,
    expected_school,
    expected_term,
    get_json,
    get_problem,
    ids,
    role_details,
    walk,
    without_lifecycle,
)


@pytest.fixture(scope="module")
def index(mirrored: Mirrored) -> TruthIndex:
    return TruthIndex(mirrored.s)


@pytest.fixture(scope="module")
def edge(mirrored: Mirrored) -> dict[str, str]:
    return mirrored.s.truth.edge_cases


def _context_is(section: Json, index: TruthIndex) -> None:
    """The embedded school, course and term equal the truth's records (null when none)."""
    record = index.record(section["id"])
    for key, ref, expected in (
        ("school", record.get("school"), expected_school),
        ("course", record.get("course"), expected_course),
        ("term", record.get("term_id"), expected_term),
    ):
        embedded = section[key]
        if ref is None or ref not in index.records:
            assert embedded is None, (section["id"], key)
            continue
        assert without_lifecycle(embedded) == expected(index.record(ref)), (section["id"], key)
        assert_active(embedded)


# --- one user's sections ------------------------------------------------------------------


async def test_a_student_in_three_schools_gets_every_section_with_its_context(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    student_id = edge["student_in_three_schools"]
    expected = truth.student_section_ids(student_id)

    page = await get_json(api, f"/v1/users/{student_id}/sections", keys.read)
    assert page["next_cursor"] is None
    sections = page["data"]
    assert ids(sections) == expected  # in id order
    for section in sections:
        assert section["role"] == "student"
        assert_section_is(section, index.record(section["id"]))
        _context_is(section, index)
    schools = {section["school"]["id"] for section in sections}
    primary = role_details(index.record(student_id))["school"]
    assert schools | {primary} == set(truth.student_school_ids(student_id))
    assert len(schools | {primary}) >= 3

    # Filters: the user's role in the section, and the term.
    assert await walk(api, f"/v1/users/{student_id}/sections", keys.read, limit=2) == sections
    as_student = await get_json(api, f"/v1/users/{student_id}/sections", keys.read, role="student")
    assert as_student["data"] == sections
    as_teacher = await get_json(api, f"/v1/users/{student_id}/sections", keys.read, role="teacher")
    assert as_teacher == {"data": [], "next_cursor": None}
    terms = {section["term_id"] for section in sections} - {None}
    assert len(terms) >= 2
    for term_id in terms:
        of_term = await get_json(
            api, f"/v1/users/{student_id}/sections", keys.read, term_id=term_id
        )
        assert ids(of_term["data"]) == [s["id"] for s in sections if s["term_id"] == term_id]
    unknown_term = await get_json(
        api, f"/v1/users/{student_id}/sections", keys.read, term_id="5cb652b8ffffffffffffffff"
    )
    assert unknown_term["data"] == []


async def test_a_teachers_sections_include_those_they_co_teach(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    section_id = edge["section_ten_teachers"]
    for teacher_id in truth.section_teacher_ids(section_id)[::3]:
        sections = await walk(api, f"/v1/users/{teacher_id}/sections", keys.read, limit=1000)
        assert ids(sections) == truth.teacher_section_ids(teacher_id)
        assert section_id in ids(sections)
        assert {section["role"] for section in sections} == {"teacher"}
        for section in sections:
            assert_section_is(section, index.record(section["id"]))
            _context_is(section, index)
        as_student = await get_json(
            api, f"/v1/users/{teacher_id}/sections", keys.read, role="student"
        )
        assert as_student["data"] == []

    # A section without a term or course embeds nulls.
    for key in ("section_no_term", "section_no_course"):
        record = index.record(edge[key])
        teacher_id = record["teacher"]
        sections = await walk(api, f"/v1/users/{teacher_id}/sections", keys.read, limit=1000)
        (section,) = [s for s in sections if s["id"] == edge[key]]
        _context_is(section, index)
        assert section["term" if key == "section_no_term" else "course"] is None


async def test_sections_by_term_come_in_term_order_with_no_term_last(
    api: httpx.AsyncClient,
    keys: Keys,
    index: TruthIndex,
    edge: dict[str, str],
    api_pool: asyncpg.Pool,
) -> None:
    truth = index.truth
    today: date = await api_pool.fetchval("SELECT current_date")
    no_term = index.record(edge["section_no_term"])
    student_id = truth.section_student_ids(no_term["id"])[0]
    teacher_id = no_term["teacher"]

    for user_id, section_ids, role in (
        (student_id, truth.student_section_ids(student_id), "student"),
        (teacher_id, truth.teacher_section_ids(teacher_id), "teacher"),
    ):
        body = await get_json(api, f"/v1/users/{user_id}/sections/by-term", keys.read)
        assert set(body) == {"data"}
        expected = expected_buckets(index, section_ids, today)
        assert buckets_of(body) == expected
        assert len(expected) >= 3 and expected[-1][0] is None
        for bucket in body["data"]:
            term = bucket["term"]
            if term is not None:
                assert without_lifecycle(term) == expected_term(index.record(term["id"]))
                assert_active(term)
            for section in bucket["sections"]:
                assert section["role"] == role
                assert_section_is(section, index.record(section["id"]))
                _context_is(section, index)

    # By role: the teacher studies in none of their sections.
    by_role = await get_json(
        api, f"/v1/users/{teacher_id}/sections/by-term", keys.read, role="student"
    )
    assert by_role == {"data": []}


# --- people linked through sections -------------------------------------------------------


async def test_a_co_teachers_students_include_that_sections_students(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    section_id = edge["section_ten_teachers"]
    section_students = set(truth.section_student_ids(section_id))
    assert section_students
    for position, teacher_id in enumerate(truth.section_teacher_ids(section_id)):
        # Small pages on a few of them: the walk must see every student exactly once.
        limit = 7 if position % 4 == 0 else 1000
        students = await walk(api, f"/v1/teachers/{teacher_id}/students", keys.read, limit=limit)
        student_ids = ids(students)
        assert student_ids == truth.teacher_student_ids(teacher_id)  # distinct, in id order
        assert section_students <= set(student_ids), position
        teacher_sections = set(truth.teacher_section_ids(teacher_id))
        for student in students:
            linking = sorted(teacher_sections & set(truth.student_section_ids(student["id"])))
            assert student["section_ids"] == linking, (teacher_id, student["id"])
            if student["id"] in section_students:
                assert section_id in student["section_ids"]
        if position == 0:
            for student in students:
                assert_user_is(student, index.record(student["id"]))


async def test_a_teacher_without_sections_has_no_students_but_exists(
    api: httpx.AsyncClient, keys: Keys, edge: dict[str, str]
) -> None:
    teacher_id = edge["teacher_no_sections"]
    body = await get_json(api, f"/v1/teachers/{teacher_id}/students", keys.read)
    assert body == {"data": [], "next_cursor": None}
    body = await get_json(api, f"/v1/users/{teacher_id}/sections/by-term", keys.read)
    assert body == {"data": []}
    await get_problem(api, "/v1/teachers/000000000000000000000000/students", keys.read, 404)


async def test_a_user_asked_for_in_a_role_it_lacks_is_not_found(
    api: httpx.AsyncClient, keys: Keys, edge: dict[str, str]
) -> None:
    student_id, teacher_id = edge["student_no_sections"], edge["teacher_no_sections"]
    problem = await get_problem(api, f"/v1/teachers/{student_id}/students", keys.read, 404)
    assert "teacher" in problem["detail"]
    for path in (f"/v1/students/{teacher_id}/teachers", f"/v1/students/{teacher_id}/contacts"):
        problem = await get_problem(api, path, keys.read, 404)
        assert "student" in problem["detail"]
    # In the role it has, the same user is found, with an empty list.
    body = await get_json(api, f"/v1/students/{student_id}/teachers", keys.read)
    assert body == {"data": [], "next_cursor": None}


async def test_a_students_teachers_and_contacts(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    student_id = edge["student_in_three_schools"]
    teachers = await walk(api, f"/v1/students/{student_id}/teachers", keys.read, limit=3)
    assert ids(teachers) == truth.student_teacher_ids(student_id)
    assert len(teachers) > 3
    student_sections = set(truth.student_section_ids(student_id))
    for teacher in teachers:
        assert_user_is(teacher, index.record(teacher["id"]))
        linking = sorted(student_sections & set(truth.teacher_section_ids(teacher["id"])))
        assert teacher["section_ids"] == linking

    # A contact of several students shows for each of them, with the relationship as sent.
    for key in ("contact_several_students", "contact_odd_relationship"):
        contact = index.record(edge[key])
        relationships = role_details(contact)["student_relationships"]
        shared = [item for item in relationships if truth.is_shared(item["student"])]
        assert shared
        for item in shared:
            contacts = await walk(
                api, f"/v1/students/{item['student']}/contacts", keys.read, limit=1000
            )
            assert ids(contacts) == truth.student_contact_ids(item["student"])
            (found,) = [c for c in contacts if c["id"] == contact["id"]]
            assert_user_is(found, contact)
            assert (found["relationship"], found["type"]) == (
                clean(item["relationship"]),
                clean(item["type"]),
            )
    assert len(truth.contact_student_ids(edge["contact_several_students"])) >= 2


async def test_a_section_lists_its_teachers_in_order_and_its_students(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    for key in ("section_ten_teachers", "section_unshared_student", "section_unshared_teacher"):
        section_id = edge[key]
        section = await get_json(api, f"/v1/sections/{section_id}", keys.read)
        assert_section_is(section, index.record(section_id))
        _context_is(section, index)
        teachers = section["teachers"]
        assert ids(teachers) == truth.section_teacher_ids(section_id)
        assert [t["position"] for t in teachers] == list(range(len(teachers)))
        assert [t["primary"] for t in teachers] == [True] + [False] * (len(teachers) - 1)
        assert teachers[0]["id"] == index.record(section_id)["teacher"]
        for teacher in teachers:
            assert_user_is(teacher, index.record(teacher["id"]))
        students = section["students"]
        assert sorted(ids(students)) == sorted(truth.section_student_ids(section_id))
        assert len(set(ids(students))) == len(students)
        for student in students:
            assert_user_is(student, index.record(student["id"]))
        # By last name, first name, id; missing names last, as Postgres sorts nulls.
        names = [
            (*_nulls_last(s["name"]["last"]), *_nulls_last(s["name"]["first"]), s["id"])
            for s in students
        ]
        assert names == sorted(names)

        if key == "section_ten_teachers":
            assert len(teachers) == 10

    # The sections Clever lists unshared people in: those were left out above.
    unshared_student = edge["section_unshared_student"]
    listed = truth.section_student_ids(unshared_student, include_unshared=True)
    assert len(listed) > len(truth.section_student_ids(unshared_student))
    unshared_teacher = edge["section_unshared_teacher"]
    listed = truth.section_teacher_ids(unshared_teacher, include_unshared=True)
    assert len(listed) > len(truth.section_teacher_ids(unshared_teacher))


def _nulls_last(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


# --- sections and users of a term, course or school ---------------------------------------


async def test_sections_of_a_term_course_and_school(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex
) -> None:
    for term in index.by_collection["terms"]:
        sections = await walk(api, f"/v1/terms/{term['id']}/sections", keys.read, limit=1000)
        assert ids(sections) == index.section_ids("term_id", term["id"])
        for section in sections:
            assert_section_is(section, index.record(section["id"]))
    for course in index.by_collection["courses"][:10]:
        sections = await walk(api, f"/v1/courses/{course['id']}/sections", keys.read, limit=7)
        assert ids(sections) == index.section_ids("course", course["id"])
        assert sections
    school_id = index.by_collection["schools"][1]["id"]
    sections = await walk(api, f"/v1/schools/{school_id}/sections", keys.read, limit=1000)
    assert ids(sections) == index.section_ids("school", school_id)
    terms = {section["term_id"] for section in sections} - {None}
    assert len(terms) >= 2
    for term_id in terms:
        of_term = await walk(
            api, f"/v1/schools/{school_id}/sections", keys.read, limit=1000, term_id=term_id
        )
        assert ids(of_term) == [s["id"] for s in sections if s["term_id"] == term_id]

    # The same filters on the collection.
    both = await walk(
        api, "/v1/sections", keys.read, limit=1000, school_id=school_id, term_id=min(terms)
    )
    assert ids(both) == [s["id"] for s in sections if s["term_id"] == min(terms)]
    course_id = index.by_collection["courses"][0]["id"]
    by_course = await walk(api, "/v1/sections", keys.read, limit=1000, course_id=course_id)
    assert ids(by_course) == index.section_ids("course", course_id)


async def test_a_schools_users_include_people_of_its_sections_from_other_schools(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    student_id = edge["student_in_two_schools"]
    home = role_details(index.record(student_id))["school"]
    (elsewhere,) = set(truth.student_school_ids(student_id)) - {home}
    section = index.record(edge["section_teacher_other_school"])
    teacher_id = section["teacher"]

    for school_id, visitor, role in (
        (elsewhere, student_id, "student"),
        (section["school"], teacher_id, "teacher"),
    ):
        expected = index.school_users(school_id)
        users = await walk(api, f"/v1/schools/{school_id}/users", keys.read, limit=1000)
        assert {u["id"]: u["primary"] for u in users} == expected
        assert ids(users) == sorted(expected)
        assert expected[visitor] is False
        assert any(expected.values()) and not all(expected.values())
        for user in users[:50]:
            assert_user_is(user, index.record(user["id"]))

        primary = await walk(
            api, f"/v1/schools/{school_id}/users", keys.read, limit=1000, primary=True
        )
        assert ids(primary) == sorted(u for u, is_primary in expected.items() if is_primary)
        others = await walk(
            api, f"/v1/schools/{school_id}/users", keys.read, limit=1000, primary=False
        )
        assert ids(others) == sorted(u for u, is_primary in expected.items() if not is_primary)
        assert visitor in ids(others)
        with_role = await walk(api, f"/v1/schools/{school_id}/users", keys.read, limit=7, role=role)
        assert ids(with_role) == sorted(
            u for u in expected if role in (index.record(u).get("roles") or {})
        )
        assert visitor in ids(with_role)
        assert all(u["roles"] == [role] for u in with_role)


# --- collections --------------------------------------------------------------------------


async def test_lists_and_gets_equal_the_truth(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, mirrored: Mirrored
) -> None:
    counts = index.truth.counts()
    district_id = mirrored.s.id

    (district,) = await walk(api, "/v1/districts", keys.read_s, limit=1000)
    record = index.record(district_id)
    fields = ("name", "state", "sis_type", "nces_id", "mdr_number", "portal_url")
    assert district["id"] == district_id
    assert {name: district[name] for name in fields} == {
        name: clean(record.get(name)) for name in fields
    }
    assert_active(district)
    assert datetime.fromisoformat(district["last_clever_sync"]) == datetime.fromisoformat(
        record["last_sync"].replace("Z", "+00:00")
    )
    assert await get_json(api, f"/v1/districts/{district_id}", keys.read) == district

    for collection, expected in (
        ("schools", expected_school),
        ("terms", expected_term),
        ("courses", expected_course),
    ):
        rows = await walk(api, f"/v1/{collection}", keys.read_s, limit=1000)
        assert len(rows) == counts[collection]
        assert ids(rows) == sorted(r["id"] for r in index.by_collection[collection])
        for row in rows:
            assert without_lifecycle(row) == expected(index.record(row["id"]))
            assert_active(row)
        assert await get_json(api, f"/v1/{collection}/{rows[-1]['id']}", keys.read) == rows[-1]
        by_district = await walk(
            api, f"/v1/{collection}", keys.read, limit=1000, district_id=district_id
        )
        assert by_district == rows

    sections = await walk(api, "/v1/sections", keys.read_s, limit=1000)
    assert len(sections) == counts["sections"]
    assert ids(sections) == sorted(index.truth.ids("sections"))
    for section in sections:
        assert_section_is(section, index.record(section["id"]))

    users = await walk(api, "/v1/users", keys.read_s, limit=1000)
    assert len(users) == counts["users"]
    assert ids(users) == sorted(index.truth.ids("users"))
    for user in users:
        assert_user_is(user, index.record(user["id"]))
    for plural, role in (
        ("students", "student"),
        ("teachers", "teacher"),
        ("staff", "staff"),
        ("district_admins", "district_admin"),
        ("contacts", "contact"),
    ):
        assert sum(role in user["roles"] for user in users) == counts[plural], role
    user = await get_json(api, f"/v1/users/{users[0]['id']}", keys.read)
    assert user == users[0]


async def test_users_by_role_school_and_text(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str]
) -> None:
    truth = index.truth
    for role in ("teacher", "staff", "district_admin"):
        users = await walk(api, "/v1/users", keys.read_s, limit=1000, role=role)
        assert ids(users) == sorted(truth.ids("users", role))

    staff_id = edge["staff_multi_school"]
    for school_id in truth.user_school_ids(staff_id):
        users = await walk(api, "/v1/users", keys.read_s, limit=1000, school_id=school_id)
        expected = sorted(
            u["id"]
            for u in index.by_collection["users"]
            if school_id in truth.user_school_ids(u["id"])
        )
        assert ids(users) == expected
        assert staff_id in expected

    # `q` looks in names and email, ignoring case, and means its text literally.
    user = index.record(edge["student_in_three_schools"])
    email = user["email"]
    found = await walk(api, "/v1/users", keys.read_s, limit=1000, q=email.upper())
    assert ids(found) == [user["id"]]
    last = clean(user["name"]["last"])
    assert last
    found = await walk(api, "/v1/users", keys.read_s, limit=1000, q=last.lower())
    assert user["id"] in ids(found)
    assert all(
        last.lower() in " ".join(filter(None, [*u["name"].values(), u["email"]])).lower()
        for u in found
    )
    # Names are stored NFC-normalized; a decomposed query finds them all the same.
    accented = next(
        u for u in index.users_with_role("student") if not (u["name"].get("last") or "").isascii()
    )
    decomposed = unicodedata.normalize("NFD", clean(accented["name"]["last"]) or "")
    assert decomposed != clean(accented["name"]["last"])
    found = await walk(api, "/v1/users", keys.read_s, limit=1000, q=decomposed)
    assert accented["id"] in ids(found)
    for bad in ("nul\x00", "x" * 201, ""):
        await get_problem(api, "/v1/users", keys.read_s, 422, q=bad)
    for literal in ("%", "_", "\\"):
        found = await walk(api, "/v1/users", keys.read_s, limit=1000, q=literal)
        assert all(literal in (u["email"] or "") + str(u["name"]) for u in found), literal
    combined = await walk(api, "/v1/users", keys.read_s, limit=1000, q=last, role="teacher")
    assert all("teacher" in u["roles"] for u in combined)


# --- pages --------------------------------------------------------------------------------


async def test_pages_walk_every_row_once_in_a_stable_order(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex
) -> None:
    school_ids = sorted(r["id"] for r in index.by_collection["schools"])
    for limit in (1, 7, 19, 20, 21, 1000):
        assert ids(await walk(api, "/v1/schools", keys.read_s, limit=limit)) == school_ids
    first = await get_json(api, "/v1/schools", keys.read_s, limit=7)
    again = await get_json(api, "/v1/schools", keys.read_s, limit=7)
    assert first == again
    second = await get_json(api, "/v1/schools", keys.read_s, limit=7, cursor=first["next_cursor"])
    assert ids(second["data"]) == school_ids[7:14]
    default = await get_json(api, "/v1/users", keys.read_s)
    assert len(default["data"]) == 100 and default["next_cursor"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": 1001},
        {"limit": "ten"},
        # Cursors not of the declared shape (base64url without padding): every other string
        # is a position, however it was made.
        {"cursor": "garba"},  # 4n + 1 characters is no base64
        {"cursor": "!!!"},
        {"cursor": "a"},
        {"cursor": "ab=="},
        {"cursor": "é"},
        {"cursor": "x" * 3000},
        {"updated_since": "yesterday"},
        {"include_inactive": "perhaps"},
    ],
    ids=lambda params: next(iter(params)) + "=" + str(next(iter(params.values())))[:20],
)
async def test_bad_page_parameters_are_422_problems(
    api: httpx.AsyncClient, keys: Keys, edge: dict[str, str], params: dict[str, Any]
) -> None:
    collections = ["/v1/users", "/v1/sections"]
    paged = [
        f"/v1/users/{edge['student_in_three_schools']}/sections",
        f"/v1/teachers/{edge['teacher_admin_same_email']}/students",
    ]
    filters_only = "updated_since" in params or "include_inactive" in params
    for path in collections if filters_only else collections + paged:
        await get_problem(api, path, keys.read, 422, **params)


async def test_updated_since_keeps_what_changed_since(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, api_pool: asyncpg.Pool
) -> None:
    synced_at: datetime = await api_pool.fetchval(
        "SELECT max(updated_at) FROM schools WHERE district_id = $1", index.district_id
    )
    everything = await walk(api, "/v1/schools", keys.read_s, limit=1000)
    past = (synced_at - timedelta(days=1)).isoformat()
    assert await walk(api, "/v1/schools", keys.read_s, limit=1000, updated_since=past) == everything
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for path in ("/v1/schools", "/v1/users", "/v1/sections", "/v1/terms", "/v1/courses"):
        assert await walk(api, path, keys.read_s, limit=1000, updated_since=future) == []
    # Without an offset the time is UTC.
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert await walk(api, "/v1/districts", keys.read_s, limit=10, updated_since=naive) == []


# --- sensitive fields ---------------------------------------------------------------------


async def test_sensitive_fields_show_only_with_the_sensitive_scope(
    api: httpx.AsyncClient,
    keys: Keys,
    index: TruthIndex,
    edge: dict[str, str],
    mirrored: Mirrored,
) -> None:
    student_id = edge["student_sensitive_fields"]
    served = role_details(index.record(student_id))
    flags = {"Y": True, "N": False}

    shown = await get_json(api, f"/v1/users/{student_id}", keys.sensitive)
    assert shown["sensitive"] == {
        "iep_status": served["iep_status"],
        "ell_status": flags[served["ell_status"]],
        "frl_status": served["frl_status"],
        "section_504_status": flags[served["section_504_status"]],
        "gifted_status": flags[served["gifted_status"]],
        "disability": served["disability"],
        **{
            name: served[name]
            for name in ("home_language", "home_language_code")
            if served.get(name)
        },
    }
    assert (await get_json(api, f"/v1/users/{student_id}", keys.admin)) == shown
    hidden = await get_json(api, f"/v1/users/{student_id}", keys.read)
    assert "sensitive" not in hidden
    assert {**hidden, "sensitive": shown["sensitive"]} == shown

    # A district that did not enable them has none to show, whatever the key.
    other = mirrored.other.truth.edge_cases["student_sensitive_fields"]
    assert "disability" in role_details(mirrored.other.truth.record(other) or {})
    assert (await get_json(api, f"/v1/users/{other}", keys.sensitive))["sensitive"] is None

    # Everywhere users appear.
    other_id = edge["student_in_three_schools"]
    section_id = index.truth.student_section_ids(other_id)[0]
    teacher_id = index.truth.section_teacher_ids(section_id)[0]
    for path, field in (
        (f"/v1/sections/{section_id}", "students"),
        (f"/v1/teachers/{teacher_id}/students", "data"),
        ("/v1/users?role=student", "data"),
    ):
        for key, expect_shown in ((keys.sensitive, True), (keys.read, False)):
            listed = (await get_json(api, path, key))[field]
            people = [p for p in listed if "student" in p["roles"]]
            assert people
            assert all((p.get("sensitive") is not None) is expect_shown for p in people), path
            assert all(("sensitive" in p) is expect_shown for p in people), path


# --- ids ----------------------------------------------------------------------------------


async def test_unknown_ids_and_ids_of_unseen_districts_are_both_404(
    api: httpx.AsyncClient, keys: Keys, index: TruthIndex, edge: dict[str, str], mirrored: Mirrored
) -> None:
    student_id = edge["student_in_three_schools"]
    section_id = edge["section_ten_teachers"]
    school_id = index.record(section_id)["school"]
    record_paths = [
        f"/v1/districts/{mirrored.s.id}",
        f"/v1/schools/{school_id}",
        f"/v1/schools/{school_id}/sections",
        f"/v1/schools/{school_id}/users",
        f"/v1/terms/{index.record(section_id)['term_id']}",
        f"/v1/terms/{index.record(section_id)['term_id']}/sections",
        f"/v1/courses/{index.record(section_id)['course']}",
        f"/v1/courses/{index.record(section_id)['course']}/sections",
        f"/v1/sections/{section_id}",
        f"/v1/users/{student_id}",
        f"/v1/users/{student_id}/sections",
        f"/v1/users/{student_id}/sections/by-term",
        f"/v1/teachers/{index.record(section_id)['teacher']}/students",
        f"/v1/students/{student_id}/teachers",
        f"/v1/students/{student_id}/contacts",
    ]
    unknown = "5cb652b8ffffffffffffffff"
    for path in record_paths:
        await get_json(api, path, keys.read_s)
        unseen = await get_problem(api, path, keys.read_other, 404)
        segments = path.split("/")
        real_id = segments[3]
        segments[3] = unknown
        missing = await get_problem(api, "/".join(segments), keys.read_s, 404)
        # Both answers read the same, so a key cannot tell "hidden" from "absent".
        assert unseen["title"] == missing["title"]
        assert unseen["detail"].replace(real_id, unknown) == missing["detail"]


@pytest.mark.parametrize(
    "bad_id",
    ["has space", "x" * 200, "semi;colon", "quote'd", "dot.ted", "ünïcode", "%00"],
    ids=["space", "200-chars", "semicolon", "quote", "dot", "unicode", "nul"],
)
async def test_malformed_ids_are_422_never_500(
    api: httpx.AsyncClient, keys: Keys, bad_id: str
) -> None:
    for template in (
        "/v1/districts/{}",
        "/v1/schools/{}",
        "/v1/schools/{}/users",
        "/v1/terms/{}/sections",
        "/v1/sections/{}",
        "/v1/users/{}",
        "/v1/users/{}/sections",
        "/v1/users/{}/sections/by-term",
        "/v1/teachers/{}/students",
        "/v1/students/{}/contacts",
    ):
        await get_problem(api, template.format(bad_id), keys.read, 422)
    for name in ("district_id", "school_id", "term_id", "course_id"):
        await get_problem(api, "/v1/sections", keys.read, 422, **{name: bad_id})
