"""Custom groups: syncs never change them; members follow their Clever record's state; a
split partitions a section; every change is in the group's history."""

from __future__ import annotations

from typing import Any

from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.local_support import Edited, Json

UNKNOWN = "000000000000000000000000"


def _section_with_students(edited: Edited, at_least: int) -> Json:
    for section in edited.district.iter_records("sections"):
        if len(section.get("students") or []) >= at_least and section.get("teacher"):
            return section
    raise AssertionError(f"no section with {at_least} students and a teacher")


async def _post(edited: Edited, path: str, body: Json, status: int = 201) -> Any:
    response = await edited.api.post(path, json=body, headers=bearer(edited.writer))
    assert response.status_code == status, response.text
    return response.json()


def _members(group: Json) -> dict[str, str]:
    return {member["user_id"]: member["status"] for member in group["members"]}


async def test_a_group_from_a_section_outlives_the_section_and_follows_its_members(
    edited: Edited,
) -> None:
    district = edited.district
    section = _section_with_students(edited, 4)
    teacher = section["teacher"]
    shown = await edited.get(f"/v1/sections/{section['id']}")
    students = sorted(student["id"] for student in shown["students"])
    group = await _post(
        edited,
        "/v1/groups",
        {"name": "Reading circle", "owner_id": teacher, "from_section_id": section["id"]},
    )
    assert (group["name"], group["owner_id"], group["district_id"]) == (
        "Reading circle",
        teacher,
        district.id,
    )
    assert group["source_section_id"] == section["id"] and group["created_by"] == "registrar"
    assert _members(group) == dict.fromkeys(students, "active")
    assert await edited.get(f"/v1/groups/{group['id']}") == group

    # The section loses two students and a third leaves the district: the group keeps all.
    left, gone = students[:2], students[2]
    district.remove_students(section["id"], left)
    district.delete(gone)
    await edited.full()
    now = await edited.get(f"/v1/groups/{group['id']}")
    assert _members(now) == {**dict.fromkeys(students, "active"), gone: "inactive"}
    remaining = {s["id"] for s in (await edited.get(f"/v1/sections/{section['id']}"))["students"]}
    assert not remaining & {*left, gone}
    district.restore(gone)
    await edited.incremental()
    assert _members(await edited.get(f"/v1/groups/{group['id']}"))[gone] == "active"

    # Where the group is listed.
    for path in (
        f"/v1/users/{students[0]}/groups",
        f"/v1/users/{teacher}/groups",
        f"/v1/sections/{section['id']}/groups",
    ):
        assert group["id"] in {g["id"] for g in (await edited.get(path))["data"]}, path

    # Changes, each in the history.
    renamed = await edited.api.patch(
        f"/v1/groups/{group['id']}", json={"name": "Book club"}, headers=bearer(edited.writer)
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Book club"
    other = next(
        u["id"]
        for u in district.iter_records("users")
        if "student" in (u.get("roles") or {}) and u["id"] not in students
    )
    added = await _post(edited, f"/v1/groups/{group['id']}/members", {"user_ids": [other]}, 200)
    assert other in _members(added)
    removed = await edited.api.delete(
        f"/v1/groups/{group['id']}/members/{students[0]}", headers=bearer(edited.writer)
    )
    assert removed.status_code == 200 and students[0] not in _members(removed.json())
    again = await edited.api.delete(
        f"/v1/groups/{group['id']}/members/{students[0]}", headers=bearer(edited.writer)
    )
    assert_problem(again, 404)
    deleted = await edited.api.delete(f"/v1/groups/{group['id']}", headers=bearer(edited.writer))
    assert deleted.status_code == 200 and deleted.json()["active"] is False
    assert_problem(
        await edited.api.get(f"/v1/groups/{group['id']}", headers=bearer(edited.reader)), 404
    )
    assert (await edited.get(f"/v1/groups/{group['id']}?include_inactive=true"))["name"]
    listed = await edited.get(f"/v1/users/{teacher}/groups")
    assert group["id"] not in {g["id"] for g in listed["data"]}
    history = (await edited.get(f"/v1/groups/{group['id']}/history"))["data"]
    assert [change["action"] for change in history] == [
        "created",
        "renamed",
        "members_added",
        "member_removed",
        "deleted",
    ]
    assert {change["actor"] for change in history} == {"registrar"}
    assert history[1]["detail"] == {"from": "Reading circle", "to": "Book club"}
    assert history[2]["detail"] == {"user_ids": [other]}
    assert sorted(history[0]["detail"]["member_ids"]) == students


async def test_a_split_partitions_the_section(edited: Edited) -> None:
    section = _section_with_students(edited, 5)
    shown = await edited.get(f"/v1/sections/{section['id']}")
    students = {student["id"] for student in shown["students"]}
    split = await _post(edited, f"/v1/sections/{section['id']}/split", {"count": 3})
    parts = [set(_members(group)) for group in split["data"]]
    assert len(parts) == 3
    assert set().union(*parts) == students and sum(map(len, parts)) == len(students)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert {group["owner_id"] for group in split["data"]} == {section["teacher"]}
    assert [group["name"] for group in split["data"]] == [
        f"{shown['display_name']} {number}" for number in (1, 2, 3)
    ]
    assert {g["source_section_id"] for g in split["data"]} == {section["id"]}
    listed = await edited.get(f"/v1/sections/{section['id']}/groups")
    assert {g["id"] for g in split["data"]} <= {g["id"] for g in listed["data"]}

    # Sub-groups are named after the section as the API shows it (an override included).
    await edited.put(f"/v1/sections/{section['id']}/overrides", {"display_name": "Lab bench"})
    named = await _post(edited, f"/v1/sections/{section['id']}/split", {"count": 2})
    assert [g["name"] for g in named["data"]] == ["Lab bench 1", "Lab bench 2"]

    ordered = sorted(students)
    by_lists = await _post(
        edited,
        f"/v1/sections/{section['id']}/split",
        {"lists": [ordered[:2], ordered[2:4]], "name": "Lab"},
    )
    assert [sorted(_members(g)) for g in by_lists["data"]] == [ordered[:2], ordered[2:4]]
    assert [g["name"] for g in by_lists["data"]] == ["Lab 1", "Lab 2"]
    path = f"/v1/sections/{section['id']}/split"
    for bad in (
        {},
        {"count": 1},
        {"count": 3, "lists": [ordered[:1], ordered[1:2]]},
        {"count": 2, "lists": [ordered[:1], ordered[1:2]]},
        {"lists": [ordered[:2], ordered[1:3]]},
        {"lists": [ordered[:1], [UNKNOWN]]},
        {"count": 2, "owner_id": ordered[0]},
    ):
        assert_problem(await edited.api.post(path, json=bad, headers=bearer(edited.writer)), 422)


async def test_group_requests_are_checked(edited: Edited) -> None:
    district = edited.district
    section = _section_with_students(edited, 2)
    teacher, student = section["teacher"], section["students"][0]
    api = edited.api
    for bad in (
        {"name": "x", "owner_id": student},
        {"name": "x", "owner_id": teacher, "member_ids": [teacher]},
        {"name": "x", "owner_id": teacher, "member_ids": [UNKNOWN]},
        {"name": "x", "owner_id": teacher, "from_section_id": UNKNOWN},
        {"name": "x", "owner_id": teacher, "district_id": "another"},
        {"name": "", "owner_id": teacher},
        {"name": "x", "owner_id": teacher, "colour": "red"},
        {"owner_id": teacher},
    ):
        assert_problem(await api.post("/v1/groups", json=bad, headers=bearer(edited.writer)), 422)
    body = {"name": "Mine", "owner_id": teacher, "member_ids": [student]}
    assert_problem(await api.post("/v1/groups", json=body), 401)
    assert_problem(await api.post("/v1/groups", json=body, headers=bearer(edited.reader)), 403)
    # A key limited to another district does not see the owner: as if there were none.
    assert_problem(await api.post("/v1/groups", json=body, headers=bearer(edited.elsewhere)), 404)
    unknown_owner = {"name": "x", "owner_id": UNKNOWN}
    assert_problem(
        await api.post("/v1/groups", json=unknown_owner, headers=bearer(edited.writer)), 404
    )

    # The owner's students: a picked subset, or all of them.
    theirs = {
        s["id"] for s in (await edited.get(f"/v1/teachers/{teacher}/students?limit=1000"))["data"]
    }
    stranger = next(
        u["id"]
        for u in district.iter_records("users")
        if "student" in (u.get("roles") or {}) and u["id"] not in theirs
    )
    picked = sorted(theirs)[:1]
    mine = await _post(
        edited,
        "/v1/groups",
        {"name": "Picked", "owner_id": teacher, "member_ids": picked, "from_owner_students": True},
    )
    assert sorted(_members(mine)) == picked
    everyone = await _post(
        edited, "/v1/groups", {"name": "All", "owner_id": teacher, "from_owner_students": True}
    )
    assert set(_members(everyone)) == theirs
    assert_problem(
        await api.post(
            "/v1/groups",
            json={
                "name": "x",
                "owner_id": teacher,
                "member_ids": [stranger],
                "from_owner_students": True,
            },
            headers=bearer(edited.writer),
        ),
        422,
    )

    group = mine["id"]
    for method, path, payload in (
        ("GET", f"/v1/groups/{group}", None),
        ("GET", f"/v1/groups/{group}/history", None),
        ("PATCH", f"/v1/groups/{group}", {"name": "Taken"}),
        ("DELETE", f"/v1/groups/{group}", None),
        ("POST", f"/v1/groups/{group}/members", {"user_ids": [student]}),
        ("DELETE", f"/v1/groups/{group}/members/{picked[0]}", None),
        ("POST", f"/v1/sections/{section['id']}/split", {"count": 2}),
        ("GET", f"/v1/users/{teacher}/groups", None),
        ("GET", f"/v1/sections/{section['id']}/groups", None),
    ):
        answer = await api.request(method, path, json=payload, headers=bearer(edited.elsewhere))
        assert_problem(answer, 404)
        if method != "GET":
            assert_problem(await api.request(method, path, json=payload), 401)
            refused = await api.request(method, path, json=payload, headers=bearer(edited.reader))
            assert_problem(refused, 403)
    assert (await edited.get(f"/v1/groups/{group}"))["name"] == "Picked"
    assert_problem(await api.get("/v1/groups/not-a-uuid", headers=bearer(edited.reader)), 422)
    assert_problem(
        await api.post(
            f"/v1/groups/{group}/members",
            json={"user_ids": [teacher]},
            headers=bearer(edited.writer),
        ),
        422,
    )
    assert_problem(
        await api.post(
            f"/v1/groups/{group}/members", json={"user_ids": []}, headers=bearer(edited.writer)
        ),
        422,
    )
