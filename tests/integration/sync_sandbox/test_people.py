"""People across roles: staff records sharing an email are one person with a stable id;
students and contacts never are; an administrator's split or merge outlives syncs."""

from __future__ import annotations

from typing import Any

from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.local_support import Edited, first_record


async def _person(edited: Edited, record_id: str) -> dict[str, Any]:
    return await edited.get(f"/v1/people/{record_id}")


async def _post(edited: Edited, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await edited.api.post(path, json=body, headers=bearer(edited.writer))
    assert response.status_code == status, response.text
    return response.json()


def _teacher_with_own_email(edited: Edited) -> dict[str, Any]:
    """A teacher whose email no other record of the district has."""
    users = list(edited.district.iter_records("users"))
    emails = [str(user.get("email") or "").lower() for user in users]
    for user in users:
        email = str(user.get("email") or "").lower()
        if "teacher" in user["roles"] and "@" in email and emails.count(email) == 1:
            return user
    raise AssertionError("every teacher shares an email")


async def _link_warnings(edited: Edited) -> set[str]:
    rows = await edited.pool.fetch(
        "SELECT record_id FROM data_warnings WHERE district_id = $1"
        " AND code = 'person_link_changed' AND resolved_at IS NULL",
        edited.district.id,
    )
    return {row["record_id"] for row in rows}


async def test_records_sharing_an_email_are_one_person_and_corrections_outlive_syncs(
    edited: Edited,
) -> None:
    district = edited.district
    teacher = _teacher_with_own_email(edited)
    email = teacher["email"]
    admin = district.create("users", {"email": email.upper()}, role="district_admin")
    student = district.create("users", {"email": email}, role="student")
    contact = district.create("users", {"email": email}, role="contact")
    await edited.full()

    person = await _person(edited, teacher["id"])
    assert person["user_ids"] == sorted([teacher["id"], admin])
    assert {"teacher", "district_admin"} <= set(person["roles"])
    assert person["email"] == email.lower()
    assert await _person(edited, person["id"]) == person
    assert await _person(edited, admin) == person
    for user_id in (teacher["id"], admin):
        assert (await edited.get(f"/v1/users/{user_id}"))["person_id"] == person["id"]
    for user_id in (student, contact):
        assert (await edited.get(f"/v1/users/{user_id}"))["person_id"] is None
        response = await edited.api.get(f"/v1/people/{user_id}", headers=bearer(edited.reader))
        assert_problem(response, 404)

    # Stable: the same person after more syncs of both kinds.
    district.update(teacher["id"], {"name": {"last": "Renamed"}})
    await edited.incremental()
    await edited.full()
    assert (await _person(edited, teacher["id"]))["id"] == person["id"]
    assert await _link_warnings(edited) == set()

    # An email change splits them, with a warning; the teacher keeps the person.
    district.update(admin, {"email": "someone.else@example.org"})
    await edited.incremental()
    moved = await _person(edited, admin)
    assert moved["id"] != person["id"] and moved["user_ids"] == [admin]
    assert (await _person(edited, teacher["id"]))["user_ids"] == [teacher["id"]]
    assert (await _person(edited, teacher["id"]))["id"] == person["id"]
    assert await _link_warnings(edited) == {admin}

    # An administrator merges them again: it holds although the emails differ.
    merged = await _post(edited, "/v1/people/merge", {"user_ids": [teacher["id"], admin]})
    assert merged["id"] == person["id"]
    assert {r["user_id"]: r["pinned"] for r in merged["records"]} == {
        teacher["id"]: True,
        admin: True,
    }
    await edited.full()
    assert (await _person(edited, admin))["id"] == person["id"]

    # ...and splits the admin out: it stays out even once the emails match again.
    left = await _post(edited, f"/v1/people/{person['id']}/split", {"user_id": admin})
    assert left["user_ids"] == [teacher["id"]]
    district.update(admin, {"email": email})
    await edited.full()
    await edited.incremental()
    alone = await _person(edited, admin)
    assert alone["id"] != person["id"] and alone["user_ids"] == [admin]
    assert (await _person(edited, teacher["id"]))["user_ids"] == [teacher["id"]]


async def test_people_requests_are_checked(edited: Edited) -> None:
    district = edited.district
    teacher = _teacher_with_own_email(edited)["id"]
    student = first_record(district, "users", "student")["id"]
    person = (await _person(edited, teacher))["id"]
    api = edited.api
    merge = {"user_ids": [teacher, student]}
    assert_problem(
        await api.post("/v1/people/merge", json=merge, headers=bearer(edited.writer)), 422
    )
    assert_problem(
        await api.post(
            "/v1/people/merge", json={"user_ids": [teacher]}, headers=bearer(edited.writer)
        ),
        422,
    )
    assert_problem(
        await api.post("/v1/people/merge", json=merge, headers=bearer(edited.reader)), 403
    )
    assert_problem(await api.post("/v1/people/merge", json=merge), 401)
    split = f"/v1/people/{person}/split"
    assert_problem(
        await api.post(split, json={"user_id": teacher}, headers=bearer(edited.writer)), 422
    )  # the only record of its person
    assert_problem(
        await api.post(split, json={"user_id": student}, headers=bearer(edited.writer)), 422
    )
    assert_problem(
        await api.post(split, json={"user_id": teacher}, headers=bearer(edited.reader)), 403
    )
    for path in (f"/v1/people/{person}", f"/v1/people/{teacher}"):
        assert_problem(await api.get(path, headers=bearer(edited.elsewhere)), 404)
    assert_problem(
        await api.post(split, json={"user_id": teacher}, headers=bearer(edited.elsewhere)), 404
    )
    assert_problem(
        await api.post(
            "/v1/people/merge",
            json={"user_ids": [teacher, teacher + "x"]},
            headers=bearer(edited.elsewhere),
        ),
        404,
    )
    assert_problem(
        await api.get("/v1/people/000000000000000000000000", headers=bearer(edited.reader)), 404
    )


async def test_a_record_leaving_a_shared_person_does_not_take_it_along(edited: Edited) -> None:
    """A person of several records (some pinned by a merge): one whose email changes gets a
    person of its own; the person, its id and its other records stay."""
    district = edited.district
    teacher = _teacher_with_own_email(edited)
    email = teacher["email"]
    staff = district.create("users", {"email": email}, role="staff")
    admin = district.create(
        "users", {"email": "admin.elsewhere@example.org"}, role="district_admin"
    )
    await edited.full()
    person = await _person(edited, teacher["id"])
    assert person["user_ids"] == sorted([teacher["id"], staff])
    merged = await _post(edited, "/v1/people/merge", {"user_ids": [teacher["id"], admin]})
    assert merged["id"] == person["id"]

    district.update(staff, {"email": "moved.on@example.org"})
    await edited.incremental()
    moved = await _person(edited, staff)
    assert moved["id"] != person["id"] and moved["user_ids"] == [staff]
    kept = await _person(edited, teacher["id"])
    assert (kept["id"], kept["user_ids"]) == (person["id"], sorted([teacher["id"], admin]))
    assert staff in await _link_warnings(edited)
    # A new record with the old email joins the person that kept it.
    newcomer = district.create("users", {"email": email}, role="staff")
    await edited.full()
    assert (await _person(edited, newcomer))["id"] == person["id"]


async def test_a_staff_record_that_becomes_a_student_by_an_event_leaves_its_person(
    edited: Edited,
) -> None:
    """Linking runs for an event batch that stages a record linked now, even one that no
    longer has a linked role; a batch of other students' events leaves people as they are."""
    district = edited.district
    email = _teacher_with_own_email(edited)["email"]
    staff = district.create("users", {"email": email}, role="staff")
    await edited.full()
    person = await _person(edited, staff)
    assert len(person["user_ids"]) == 2

    student = first_record(district, "users", "student")["id"]
    district.update(student, {"name": {"middle": "Q"}})
    await edited.incremental()
    assert (await _person(edited, staff))["id"] == person["id"]

    district.update(staff, {"roles": {"staff": None, "student": {"grade": "9"}}})
    await edited.incremental()
    assert (await edited.get(f"/v1/users/{staff}"))["person_id"] is None
    assert (await _person(edited, person["id"]))["user_ids"] == [
        user for user in person["user_ids"] if user != staff
    ]
