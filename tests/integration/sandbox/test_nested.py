"""Clever's nested routes agree with the top-level collections; errors answer `{"message"}`.

Every expected relation here is computed from full reads of the top-level collections, so
the nested routes are checked against what a client could see, not against the generator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox.server import RunningSandbox
from tests.integration.sandbox.conftest import COLLECTIONS, admin_client, client_for, read_all

Record = dict[str, Any]


def _role(user: Record) -> tuple[str, Record]:
    name, role = next(iter(user["roles"].items()))
    return name, role


@dataclass
class TopLevel:
    """A whole district as the top-level routes serve it, and the relations it implies."""

    records: dict[str, dict[str, Record]]

    @classmethod
    def read(cls, client: httpx.Client) -> TopLevel:
        records = {}
        for collection in COLLECTIONS:
            listed, _ = read_all(client, f"/v3.1/{collection}?limit=10000")
            records[collection] = {record["id"]: record for record in listed}
        return cls(records)

    def served(self, ids: Iterable[Any], collection: str) -> list[str]:
        return sorted({i for i in ids if i in self.records[collection]})

    @property
    def sections(self) -> list[Record]:
        return list(self.records["sections"].values())

    def section_teachers(self, section: Record) -> list[Any]:
        return [section.get("teacher"), *(section.get("teachers") or [])]

    def sections_of_user(self, user_id: str) -> list[str]:
        return self.served(
            (
                section["id"]
                for section in self.sections
                if user_id in (section.get("students") or [])
                or user_id in self.section_teachers(section)
            ),
            "sections",
        )

    def schools_of_user(self, user: Record, primary: bool = False) -> list[str]:
        name, role = _role(user)
        if primary:
            return self.served([role.get("school")], "schools")
        schools = [role.get("school"), *(role.get("schools") or [])]
        if name == "student":
            schools += [
                section.get("school")
                for section in self.sections
                if user["id"] in (section.get("students") or [])
            ]
        return self.served(schools, "schools")

    def users_of_school(self, school_id: str, role: str | None, primary: bool) -> list[str]:
        roles = (role,) if role else ("staff", "student", "teacher")
        return sorted(
            user["id"]
            for user in self.records["users"].values()
            if _role(user)[0] in roles and school_id in self.schools_of_user(user, primary)
        )

    def expected(self, collection: str, record: Record, nested: str) -> list[str]:
        """The ids `/{collection}/{id}/{nested}` must list, in order."""
        record_id = record["id"]
        field = {"schools": "school", "terms": "term_id", "courses": "course"}.get(collection)
        if collection == "sections":
            return self.served(
                [*(record.get("students") or []), *self.section_teachers(record)], "users"
            )
        if collection == "users":
            name, role = _role(record)
            if nested == "sections":
                return self.sections_of_user(record_id)
            if nested == "schools":
                return self.schools_of_user(record)
            if nested == "mystudents" and name == "teacher":
                sections = [self.records["sections"][i] for i in self.sections_of_user(record_id)]
                return self.served(
                    (sid for section in sections for sid in section.get("students") or []),
                    "users",
                )
            if nested == "mystudents" and name == "contact":
                return self.served(
                    (item.get("student") for item in role.get("student_relationships") or []),
                    "users",
                )
            if nested == "myteachers" and name == "student":
                return self.served(
                    (
                        teacher
                        for section in self.sections
                        if record_id in (section.get("students") or [])
                        for teacher in self.section_teachers(section)
                    ),
                    "users",
                )
            if nested == "mycontacts" and name == "student":
                return sorted(
                    user["id"]
                    for user in self.records["users"].values()
                    if record_id
                    in (
                        item.get("student")
                        for item in _role(user)[1].get("student_relationships") or []
                    )
                )
            return []
        assert field is not None
        own = [section for section in self.sections if section.get(field) == record_id]
        if nested == "sections":
            return sorted(section["id"] for section in own)
        if nested == "users":
            return self.users_of_school(record_id, None, False)
        other = {"schools": "school", "terms": "term_id", "courses": "course"}[nested]
        return self.served((section.get(other) for section in own), nested)


LIST_ROUTES = {
    "sections": ("users",),
    "schools": ("sections", "users", "terms", "courses"),
    "terms": ("sections", "schools"),
    "courses": ("sections", "schools"),
    "users": ("sections", "schools", "mystudents", "myteachers", "mycontacts"),
}


def _ids(client: httpx.Client, path: str) -> list[str]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    body = response.json()
    assert all(entry["uri"].endswith(f"/{entry['data']['id']}") for entry in body["data"])
    return [entry["data"]["id"] for entry in body["data"]]


def _check_every_relation(client: httpx.Client, district_id: str) -> TopLevel:
    top = TopLevel.read(client)
    for collection, names in LIST_ROUTES.items():
        for record in top.records[collection].values():
            for nested in names:
                path = f"/v3.1/{collection}/{record['id']}/{nested}?limit=10000"
                assert _ids(client, path) == top.expected(collection, record, nested), path
            district = client.get(f"/v3.0/{collection}/{record['id']}/district").json()
            assert district["data"]["id"] == district_id
    return top


def _check_section_singles(client: httpx.Client, top: TopLevel) -> None:
    for section in top.sections:
        for nested, field, collection in (
            ("school", "school", "schools"),
            ("course", "course", "courses"),
            ("term", "term_id", "terms"),
        ):
            response = client.get(f"/v3.1/sections/{section['id']}/{nested}")
            if section.get(field) in top.records[collection]:
                assert response.status_code == 200
                assert response.json()["data"] == top.records[collection][section[field]]
            else:
                assert response.status_code == 404
                assert set(response.json()) == {"message"}


def test_every_nested_route_equals_the_relation_of_the_top_level_data(
    tiny_sandbox: RunningSandbox,
) -> None:
    district = tiny_sandbox.districts[0]
    with client_for(tiny_sandbox) as client:
        top = _check_every_relation(client, district.id)
        _check_section_singles(client, top)
    # The tiny district has the relations' edge cases, so the checks above covered them.
    edge = district.truth.edge_cases
    student = top.records["users"][edge["student_in_three_schools"]]
    schools = top.schools_of_user(student)
    assert len(schools) >= 3
    for school_id in schools:
        assert student["id"] in top.users_of_school(school_id, "student", False)
    staff = top.records["users"][edge["staff_multi_school"]]
    assert len(top.schools_of_user(staff)) >= 2


def test_role_and_primary_filters(tiny_sandbox: RunningSandbox) -> None:
    with client_for(tiny_sandbox) as client:
        top = TopLevel.read(client)
        for section in top.sections:
            path = f"/v3.0/sections/{section['id']}/users?limit=10000"
            students = _ids(client, f"{path}&role=student")
            assert students == top.served(section.get("students") or [], "users")
            teachers = _ids(client, f"{path}&role=teacher")
            assert teachers == top.served(top.section_teachers(section), "users")
        for school_id in top.records["schools"]:
            for role in ("student", "teacher", "staff"):
                path = f"/v3.0/schools/{school_id}/users?limit=10000&role={role}"
                assert _ids(client, path) == top.users_of_school(school_id, role, False)
                primary = _ids(client, f"{path}&primary=true")
                assert primary == top.users_of_school(school_id, role, True)
        for user in top.records["users"].values():
            path = f"/v3.0/users/{user['id']}/schools?primary=true"
            assert _ids(client, path) == top.schools_of_user(user, primary=True)
        school_id = next(iter(top.records["schools"]))
        for bad in ("role=contact", "role=nobody", "primary=yes"):
            response = client.get(f"/v3.0/schools/{school_id}/users?{bad}")
            assert response.status_code == 400
            assert set(response.json()) == {"message"}


def test_v30_leaves_out_v31_fields_on_nested_routes(tiny_sandbox: RunningSandbox) -> None:
    district = tiny_sandbox.districts[0]
    student_id = district.truth.edge_cases["student_sensitive_fields"]
    section_id = district.truth.student_section_ids(student_id)[0]
    with client_for(tiny_sandbox) as client:
        for version in ("v3.0", "v3.1"):
            body = client.get(f"/{version}/sections/{section_id}/users?role=student").json()
            [entry] = [e for e in body["data"] if e["data"]["id"] == student_id]
            assert entry["uri"] == f"/{version}/users/{student_id}"
            top_level = client.get(f"/{version}/users/{student_id}").json()["data"]
            assert entry["data"] == top_level


def test_nested_routes_page_forwards_and_back(tiny_sandbox: RunningSandbox) -> None:
    with client_for(tiny_sandbox) as client:
        school_id = max(
            TopLevel.read(client).records["schools"],
            key=lambda i: len(_ids(client, f"/v3.0/schools/{i}/users?limit=10000")),
        )
        path = f"/v3.0/schools/{school_id}/users"
        everything = _ids(client, f"{path}?limit=10000")
        assert len(everything) > 9
        paged, requests = read_all(client, f"{path}?limit=4")
        assert [record["id"] for record in paged] == everything
        assert requests == len(everything) // 4 + 1
        first = client.get(f"{path}?limit=4").json()
        rels = {link["rel"]: link["uri"] for link in first["links"]}
        assert rels["self"] == f"{path}?limit=4"
        assert rels["next"] == f"{path}?limit=4&starting_after={everything[3]}"
        assert "prev" not in rels
        second = client.get(rels["next"]).json()
        assert [e["data"]["id"] for e in second["data"]] == everything[4:8]
        prev = next(link["uri"] for link in second["links"] if link["rel"] == "prev")
        assert _ids(client, prev) == everything[:4]
        assert _ids(client, f"{path}?ending_before=last&limit=3") == everything[-3:]
        filtered = client.get(f"{path}?limit=2&role=student").json()
        next_uri = next(link["uri"] for link in filtered["links"] if link["rel"] == "next")
        assert "role=student" in next_uri


def test_nested_routes_follow_changes(fresh_sandbox: RunningSandbox) -> None:
    district = fresh_sandbox.districts[0]
    truth = district.truth
    schools = truth.ids("schools")
    students = truth.ids("users", "student")
    sections = truth.ids("sections")
    teacher = truth.ids("users", "teacher")[0]
    changes = [
        {"op": "move_student", "student": students[1], "school": schools[-1]},
        {"op": "add_students", "section": sections[0], "students": [students[-1]]},
        {"op": "remove_students", "section": sections[1], "students": students[:10]},
        {"op": "update", "id": sections[2], "set": {"school": schools[-1]}},
        {
            "op": "update",
            "id": truth.ids("users", "staff")[0],
            "set": {"roles": {"staff": {"schools": schools}}},
        },
        {
            "op": "create",
            "collection": "sections",
            "record": {
                "school": schools[0],
                "students": students[20:23],
                "teacher": teacher,
                "teachers": [teacher],
            },
        },
        {"op": "create", "collection": "users", "role": "student"},
        {"op": "delete", "id": students[5]},
        {"op": "delete", "id": sections[3]},
        {"op": "roll_over_terms"},
    ]
    with admin_client(fresh_sandbox) as admin:
        applied = admin.post(f"/sandbox/districts/{district.id}/changes", json={"changes": changes})
        assert applied.status_code == 200, applied.text
    with client_for(fresh_sandbox) as client:
        top = _check_every_relation(client, district.id)
        _check_section_singles(client, top)
    assert students[1] in top.users_of_school(schools[-1], "student", True)
    assert sections[2] in top.expected("schools", top.records["schools"][schools[-1]], "sections")


def test_another_districts_ids_and_unknown_ids_are_404(fresh_sandbox: RunningSandbox) -> None:
    first, second = fresh_sandbox.districts
    section_id = first.truth.ids("sections")[0]
    student_id = first.truth.ids("users", "student")[0]
    school_id = first.truth.ids("schools")[0]
    with client_for(fresh_sandbox, first.token) as client:
        assert client.get(f"/v3.0/sections/{section_id}/users").status_code == 200
    with client_for(fresh_sandbox, second.token) as client:
        for path in (
            f"/v3.0/sections/{section_id}/users",
            f"/v3.0/sections/{section_id}/term",
            f"/v3.1/schools/{school_id}/sections",
            f"/v3.1/users/{student_id}/sections",
            f"/v3.1/users/{student_id}/district",
            f"/v3.1/schools/{second.truth.ids('sections')[0]}/users",
            "/v3.1/terms/5f0000000000000000000000/sections",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert set(response.json()) == {"message"}
    with client_for(fresh_sandbox, "not-a-token") as client:
        response = client.get(f"/v3.0/sections/{section_id}/users")
        assert response.status_code == 401
        assert set(response.json()) == {"message"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/v3.0/sections/x/resources", 404),
        ("GET", "/v3.0/sections/x/users/y/z", 404),
        ("GET", "/v2.1/sections/x/users", 404),
        ("POST", "/v3.0/users", 405),
        ("DELETE", "/sandbox/faults", 405),
        ("GET", "/v3.0/schools/{school}/users?limit=ten", 400),
        ("GET", "/v3.0/schools/{school}/users?limit=0", 400),
        ("GET", "/v3.0/schools/{school}/users?limit=10001", 413),
        ("GET", "/v3.0/sections/{section}/users?role=staff", 400),
    ],
)
def test_errors_have_clevers_shape(
    tiny_sandbox: RunningSandbox, method: str, path: str, status: int
) -> None:
    truth = tiny_sandbox.districts[0].truth
    path = path.format(school=truth.ids("schools")[0], section=truth.ids("sections")[0])
    with client_for(tiny_sandbox) as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message"} and isinstance(body["message"], str) and body["message"]


def test_nested_routes_get_the_same_faults(fresh_sandbox: RunningSandbox) -> None:
    with admin_client(fresh_sandbox) as admin:
        assert admin.put("/sandbox/faults", json={"rate_limit_every": 2}).status_code == 200
        admin.post("/sandbox/stats/reset")
    section_id = fresh_sandbox.districts[0].truth.ids("sections")[0]
    with client_for(fresh_sandbox) as client:
        statuses = [client.get(f"/v3.0/sections/{section_id}/users") for _ in range(4)]
    assert [response.status_code for response in statuses] == [200, 429, 200, 429]
    assert statuses[1].json() == {"message": "rate limit exceeded"}
    assert "x-ratelimit-limit" in statuses[0].headers
