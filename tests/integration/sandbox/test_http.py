"""The sandbox speaks Clever v3 over HTTP: paging, errors, auth, events and changes."""

from __future__ import annotations

import pytest

from sandbox.server import RunningSandbox
from tests.integration.sandbox.conftest import (
    COLLECTIONS,
    admin_client,
    client_for,
    read_all,
)

ROLES = ("student", "teacher", "staff", "district_admin", "contact")


@pytest.mark.parametrize("limit", [10_000, 3])
def test_tiny_collections_page_to_the_end_with_truth_counts(
    tiny_sandbox: RunningSandbox, limit: int
) -> None:
    truth = tiny_sandbox.districts[0].truth
    counts = truth.counts()
    with client_for(tiny_sandbox) as client:
        for collection in COLLECTIONS:
            records, _ = read_all(client, f"/v3.1/{collection}?limit={limit}")
            ids = [record["id"] for record in records]
            assert len(ids) == counts[collection]
            assert ids == sorted(ids) == truth.ids(collection)
        for role in ROLES:
            records, _ = read_all(client, f"/v3.0/users?role={role}&limit={limit}")
            plural = "staff" if role == "staff" else f"{role}s"
            assert len(records) == counts[plural]
            assert {next(iter(record["roles"])) for record in records} == {role}


@pytest.mark.parametrize("limit", [10_000, 1_000])
def test_s_collections_page_to_the_end_with_truth_counts(
    s_sandbox: RunningSandbox, limit: int
) -> None:
    counts = s_sandbox.districts[0].truth.counts()
    with client_for(s_sandbox) as client:
        for collection in COLLECTIONS:
            records, requests = read_all(client, f"/v3.1/{collection}?limit={limit}")
            assert len(records) == counts[collection]
            assert len({record["id"] for record in records}) == counts[collection]
            assert requests <= counts[collection] // limit + 2


def test_default_limit_and_links(tiny_sandbox: RunningSandbox) -> None:
    with client_for(tiny_sandbox) as client:
        body = client.get("/v3.0/users").json()
        assert len(body["data"]) == min(100, tiny_sandbox.districts[0].truth.counts()["users"])
        page = client.get("/v3.0/users?limit=5").json()
        first, last = page["data"][0], page["data"][-1]
        assert first["uri"] == f"/v3.0/users/{first['data']['id']}"
        rels = {link["rel"]: link["uri"] for link in page["links"]}
        assert rels["self"] == "/v3.0/users?limit=5"
        assert rels["next"] == f"/v3.0/users?limit=5&starting_after={last['data']['id']}"
        assert "prev" not in rels
        second = client.get(rels["next"]).json()
        prev = next(link["uri"] for link in second["links"] if link["rel"] == "prev")
        back = client.get(prev).json()
        assert [entry["data"]["id"] for entry in back["data"]] == [
            entry["data"]["id"] for entry in page["data"]
        ]


def test_a_full_last_page_has_a_next_link_to_an_empty_page(tiny_sandbox: RunningSandbox) -> None:
    terms = tiny_sandbox.districts[0].truth.counts()["terms"]
    with client_for(tiny_sandbox) as client:
        body = client.get(f"/v3.0/terms?limit={terms}").json()
        next_uri = next(link["uri"] for link in body["links"] if link["rel"] == "next")
        empty = client.get(next_uri).json()
        assert empty["data"] == []
        assert [link["rel"] for link in empty["links"]] == ["self"]


def test_limit_above_10000_is_413_and_bad_limits_are_400(tiny_sandbox: RunningSandbox) -> None:
    with client_for(tiny_sandbox) as client:
        response = client.get("/v3.0/users?limit=10001")
        assert response.status_code == 413
        assert "message" in response.json()
        assert client.get("/v3.0/users?limit=0").status_code == 400
        assert client.get("/v3.0/users?limit=ten").status_code == 400
        assert client.get("/v3.0/users?role=principal").status_code == 400


def test_bad_or_missing_token_is_401(tiny_sandbox: RunningSandbox) -> None:
    with client_for(tiny_sandbox, "not-a-token") as client:
        response = client.get("/v3.0/districts")
        assert response.status_code == 401
        assert "message" in response.json()
    with client_for(tiny_sandbox) as client:
        assert client.get("/v3.0/districts", headers={"Authorization": ""}).status_code == 401


def test_single_records_and_404(tiny_sandbox: RunningSandbox) -> None:
    district = tiny_sandbox.districts[0]
    section_id = district.truth.ids("sections")[0]
    with client_for(tiny_sandbox) as client:
        body = client.get(f"/v3.1/sections/{section_id}").json()
        assert body["data"] == district.truth.record(section_id)
        [only] = client.get("/v3.0/districts").json()["data"]
        assert only["data"]["id"] == district.id
        for path in (
            "/v3.0/users/5f0000000000000000000000",
            f"/v3.0/users/{section_id}",
            "/v3.0/terms/nope",
        ):
            response = client.get(path)
            assert response.status_code == 404
            assert isinstance(response.json()["message"], str)


def test_v30_and_v31_differ_only_in_v31_fields(tiny_sandbox: RunningSandbox) -> None:
    student_id = tiny_sandbox.districts[0].truth.edge_cases["student_sensitive_fields"]
    with client_for(tiny_sandbox) as client:
        v30 = client.get(f"/v3.0/users/{student_id}").json()["data"]["roles"]["student"]
        v31 = client.get(f"/v3.1/users/{student_id}").json()["data"]["roles"]["student"]
    assert "disability" in v31 and "iep_status" in v31
    assert "disability" not in v30 and "iep_status" not in v30
    assert {key: value for key, value in v31.items() if key in v30} == v30


def test_oauth_token_discovery(fresh_sandbox: RunningSandbox) -> None:
    config = fresh_sandbox.state.config
    with client_for(fresh_sandbox) as client:
        path = "/oauth/tokens?owner_type=district"
        assert client.get(path, auth=("wrong", "creds")).status_code == 401
        body = client.get(path, auth=(config.client_id, config.client_secret)).json()
    pairs = {(item["owner"]["id"], item["access_token"]) for item in body["data"]}
    assert pairs == {(d.id, d.token) for d in fresh_sandbox.districts}
    assert all(item["owner"]["type"] == "district" for item in body["data"])


def test_events_after_a_change_set(fresh_sandbox: RunningSandbox) -> None:
    district = fresh_sandbox.districts[0]
    with client_for(fresh_sandbox) as client:
        newest = client.get("/v3.0/events?ending_before=last&limit=1").json()["data"]
        assert [entry["data"]["id"] for entry in newest] == [district.newest_event_id()]
        cursor = newest[0]["data"]["id"]
        student_id = district.truth.ids("users", "student")[5]
        section_id = district.truth.ids("sections")[2]
        changes = {
            "changes": [
                {"op": "update", "id": student_id, "set": {"name": {"first": "Łucja"}}},
                {"op": "remove_students", "section": section_id, "students": []},
                {"op": "create", "collection": "courses", "record": {"name": "Robótica"}},
                {"op": "delete", "id": student_id},
            ]
        }
        applied = client.post(f"/sandbox/districts/{district.id}/changes", json=changes)
        assert applied.status_code == 200, applied.text
        assert applied.json()["events"]["count"] == 4
        events, _ = read_all(client, f"/v3.1/events?starting_after={cursor}&limit=2")
        assert [event["type"] for event in events] == [
            "users.updated",
            "sections.updated",
            "courses.created",
            "users.deleted",
        ]
        assert events[0]["data"]["object"]["name"]["first"] == "Łucja"
        assert "previous_attributes" in events[0]["data"]
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        only_users, _ = read_all(client, f"/v3.1/events?starting_after={cursor}&record_type=users")
        assert [event["type"] for event in only_users] == ["users.updated", "users.deleted"]
        assert client.get(f"/v3.0/users/{student_id}").status_code == 404
        unknown = client.get("/v3.0/events?starting_after=5f0000000000000000000000")
        assert unknown.status_code == 404
        assert "message" in unknown.json()
        expire = {"changes": [{"op": "expire_events", "through": cursor}]}
        client.post(f"/sandbox/districts/{district.id}/changes", json=expire)
        assert client.get(f"/v3.0/events?starting_after={cursor}").status_code == 404


def test_events_disabled_is_403(fresh_sandbox: RunningSandbox) -> None:
    disabled = fresh_sandbox.districts[1]
    with client_for(fresh_sandbox, disabled.token) as client:
        response = client.get("/v3.0/events?ending_before=last&limit=1")
    assert response.status_code == 403
    assert response.json() == {"message": "events are not enabled for this district"}


def test_admin_routes_need_the_admin_secret_or_the_district_token(
    fresh_sandbox: RunningSandbox,
) -> None:
    first, second = fresh_sandbox.districts
    with client_for(fresh_sandbox, second.token) as client:
        path = f"/sandbox/districts/{first.id}/changes"
        assert client.post(path, json={"changes": []}).status_code == 401
        assert client.get("/sandbox/stats").status_code == 401
    with admin_client(fresh_sandbox) as client:
        assert client.post(path, json={"changes": []}).status_code == 200
        bad = client.post(path, json={"changes": [{"op": "update", "id": "x", "set": {}}]})
        assert bad.status_code == 400
        listed = client.get("/sandbox/districts").json()["data"]
        assert [item["id"] for item in listed] == [first.id, second.id]
        truth = client.get(f"/sandbox/districts/{first.id}/truth").json()
        assert truth["counts"] == first.truth.counts()
        assert set(truth["edge_cases"]) == set(first.truth.edge_cases)
