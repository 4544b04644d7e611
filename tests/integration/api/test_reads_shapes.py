"""Every GET endpoint answers exactly its documented response model.

Real answers over the mirrored districts are checked strictly: no key the model does not
list, none it lists missing, at every level of nesting, with and without sensitive fields.
Endpoints are enumerated from the app, so a new one is checked without editing this file.
"""

from __future__ import annotations

import asyncio
from itertools import product

import asyncpg
import httpx
import pytest
from fastapi.routing import APIRoute

from tests.integration.api.conftest import Keys, Mirrored, SWebhook
from tests.integration.api.reads_support import Json, api_routes, assert_shape, get_json

GETS = [r for r in api_routes() if "GET" in (r.methods or ()) and r.path.startswith("/v1/")]


def _parameters(route: APIRoute) -> list[str]:
    return [param.name for param in route.dependant.path_params]


@pytest.fixture(scope="module")
async def candidates(
    mirrored: Mirrored,
    api_pool: asyncpg.Pool,
    s_group: str,
    s_person: str,
    s_webhook: SWebhook,
) -> dict[str, list[str]]:
    """Ids to try for each path parameter: records with every kind of link, and without."""
    s, other = mirrored.s.truth, mirrored.other.truth
    edge = s.edge_cases
    section = s.record(edge["section_ten_teachers"])
    assert section is not None
    contact = s.record(edge["contact_several_students"])
    assert contact is not None
    with_contacts = contact["roles"]["contact"]["student_relationships"][0]["student"]
    runs = await api_pool.fetch(
        "SELECT id::text FROM sync_runs WHERE district_id = ANY($1::text[])",
        [mirrored.s.id, mirrored.other.id],
    )
    return {
        "district_id": [mirrored.s.id, mirrored.other.id],
        "school_id": [section["school"], other.ids("schools")[0]],
        "term_id": [section["term_id"], other.ids("terms")[0]],
        "course_id": [section["course"], other.ids("courses")[0]],
        "section_id": [edge[key] for key in ("section_ten_teachers", "section_no_term")]
        + [edge["section_no_course"]],
        "user_id": [
            edge["student_in_three_schools"],
            edge["student_sensitive_fields"],
            with_contacts,
            section["teacher"],
            edge["staff_multi_school"],
            contact["id"],
        ],
        "run_id": [row[0] for row in runs],
        "group_id": [s_group],
        "person_id": [s_person],
        "webhook_id": [s_webhook.id],
        "delivery_id": [s_webhook.delivery_id],
    }


@pytest.fixture(scope="module")
async def roles(api_pool: asyncpg.Pool, mirrored: Mirrored) -> dict[str, list[str]]:
    """Each user's roles, by id."""
    rows = await api_pool.fetch("SELECT id, roles FROM users")
    return {row["id"]: row["roles"] for row in rows}


def _rows(body: Json) -> list[Json]:
    data = body.get("data")
    return data if isinstance(data, list) else [body]


def _tried(
    route: APIRoute, name: str, candidates: dict[str, list[str]], roles: dict[str, list[str]]
) -> list[str]:
    """The ids to try for a path parameter: for a route about a teacher's or a student's
    links, only users of that role (another user is 404 there)."""
    tried = candidates[name]
    role = {"/v1/teachers/": "teacher", "/v1/students/": "student"}.get(
        route.path[: route.path.find("/", 4) + 1]
    )
    if name == "user_id" and role is not None:
        tried = [user_id for user_id in tried if role in roles[user_id]]
    return tried


async def _audited(api: httpx.AsyncClient, key: str) -> None:
    """Wait until the trail holds an event: the API writes its events once a second."""
    for _ in range(50):
        if (await get_json(api, "/v1/audit", key))["data"]:
            return
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("route", GETS, ids=lambda route: route.path)
async def test_answers_have_exactly_the_fields_of_the_response_model(
    api: httpx.AsyncClient,
    keys: Keys,
    candidates: dict[str, list[str]],
    roles: dict[str, list[str]],
    route: APIRoute,
) -> None:
    names = _parameters(route)
    unknown = [name for name in names if name not in candidates]
    assert not unknown, f"add ids to try for {unknown} to `candidates`"
    model = route.response_model
    assert model is not None, f"{route.path} documents no response model"
    if route.path == "/v1/audit":
        await _audited(api, keys.admin)
    answered_rows = 0
    for values in product(*(_tried(route, name, candidates, roles) for name in names)):
        path = route.path.format(**dict(zip(names, values, strict=True)))
        # Admin-only routes answer the admin key only.
        readers = (
            (keys.admin,)
            if route.path.startswith(("/v1/webhooks", "/v1/audit"))
            else (keys.admin, keys.read)
        )
        for key in readers:
            body = await get_json(api, path, key)
            assert_shape(model, body, path)
            answered_rows += len(_rows(body))
    assert answered_rows, f"{route.path} answered no rows to check"
