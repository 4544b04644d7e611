"""Who may read what, over every GET endpoint the app has.

Endpoints are enumerated from the app's routes, so a new one is covered (or named in a
failure) without editing this file. Non-GET endpoints are tested with the sync ones.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import get_args

import asyncpg
import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.api.deps import get_reader, get_writer
from app.api.keys import Scope, create_key
from tests.integration.api.conftest import Keys, Mirrored, SWebhook
from tests.integration.api.reads_support import api_routes, assert_problem, bearer, get_json

UNKEYED = ("/healthz", "/readyz", "/metrics")
# Well-formed ids that no record has.
UNKNOWN_IDS = {
    "run_id": "00000000-0000-4000-8000-000000000000",
    "group_id": "00000000-0000-4000-8000-000000000000",
    "person_id": "00000000-0000-4000-8000-000000000000",
    "webhook_id": "00000000-0000-4000-8000-000000000000",
    "delivery_id": "00000000-0000-4000-8000-000000000000",
}
UNKNOWN_ID = "000000000000000000000000"
_PARAMETER = re.compile(r"{(\w+)}")


ROUTES = api_routes()
KEYED_GETS = [r for r in ROUTES if "GET" in (r.methods or ()) and r.path.startswith("/v1/")]


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def required_scope(route: APIRoute) -> Scope | None:
    """The scope the route's `require(...)` or `get_reader` dependency admits, if any."""
    for dependency in _dependencies(route.dependant):
        call = dependency.call
        if call is get_reader:
            return Scope.READ
        if call is get_writer:
            return Scope.WRITE
        if call is not None and getattr(call, "__qualname__", "").startswith("require."):
            scope = inspect.getclosurevars(call).nonlocals["scope"]
            assert isinstance(scope, Scope)
            return scope
    return None


def _parameters(route: APIRoute) -> list[str]:
    return _PARAMETER.findall(route.path)


def _takes_query(route: APIRoute, name: str) -> bool:
    dependants = [route.dependant, *_dependencies(route.dependant)]
    return any(param.alias == name for d in dependants for param in d.query_params)


@pytest.fixture(scope="module")
async def s_ids(
    mirrored: Mirrored, api_pool: asyncpg.Pool, s_group: str, s_person: str, s_webhook: SWebhook
) -> dict[str, str]:
    """A record of the S district for each path parameter."""
    truth = mirrored.s.truth
    section_id = truth.edge_cases["section_ten_teachers"]
    section = truth.record(section_id)
    assert section is not None
    run_id = await api_pool.fetchval(
        "SELECT id::text FROM sync_runs WHERE district_id = $1 ORDER BY created_at LIMIT 1",
        mirrored.s.id,
    )
    return {
        "district_id": mirrored.s.id,
        "school_id": section["school"],
        "term_id": section["term_id"],
        "course_id": section["course"],
        "section_id": section_id,
        "user_id": truth.edge_cases["student_in_three_schools"],
        # Routes about a teacher's links take a teacher (a student there is 404).
        "teacher_id": section["teacher"],
        "run_id": run_id,
        "group_id": s_group,
        "person_id": s_person,
        "webhook_id": s_webhook.id,
        "delivery_id": s_webhook.delivery_id,
    }


def _path(route: APIRoute, values: dict[str, str]) -> str:
    """The route's path with `values` for its parameters (ids of no record for the others)."""
    chosen = dict(values)
    if route.path.startswith("/v1/teachers/") and "teacher_id" in values:
        chosen["user_id"] = values["teacher_id"]
    return route.path.format(
        **{name: chosen.get(name, UNKNOWN_IDS.get(name, UNKNOWN_ID)) for name in _parameters(route)}
    )


@pytest.fixture(scope="module")
async def limited(api_pool: asyncpg.Pool, mirrored: Mirrored) -> dict[tuple[Scope, str], str]:
    """Keys of one scope limited to one district: (scope, district id) -> secret."""
    found = {}
    for scope in (Scope.READ, Scope.SYNC_WRITE, Scope.ADMIN):
        for district_id in (mirrored.s.id, mirrored.other.id):
            async with api_pool.acquire() as connection:
                created = await create_key(
                    connection,
                    name=f"test {scope} of {district_id}",
                    scopes=[scope],
                    district_ids=[district_id],
                )
            found[(scope, district_id)] = created.secret
    return found


def _limited_key(route: APIRoute, limited: dict[tuple[Scope, str], str], district_id: str) -> str:
    """A key limited to one district that holds the route's scope."""
    scope = required_scope(route)
    assert scope is not None
    return limited[(scope, district_id)]


def _route_id(route: APIRoute) -> str:
    return route.path


def test_every_endpoint_but_health_needs_a_key() -> None:
    # `POST /v1/sync` takes a signed webhook instead of a key; its own tests cover both.
    unkeyed = sorted(
        r.path for r in ROUTES if required_scope(r) is None and r.path not in ("/v1/sync", "/sync")
    )
    assert unkeyed == sorted(UNKEYED)
    assert {r.path for r in KEYED_GETS} >= {
        "/v1/districts",
        "/v1/users/{user_id}/sections/by-term",
        "/v1/teachers/{user_id}/students",
    }


async def test_health_and_metrics_need_no_key(api: httpx.AsyncClient) -> None:
    for path in UNKEYED:
        response = await api.get(path)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("route", KEYED_GETS, ids=_route_id)
async def test_no_key_or_a_bad_one_is_401(
    api: httpx.AsyncClient, keys: Keys, s_ids: dict[str, str], route: APIRoute
) -> None:
    path = _path(route, s_ids)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {keys.read}"},
        {"Authorization": keys.read},
        bearer("rk_not-a-key"),
        bearer(keys.read + "x"),
        bearer(keys.revoked),
    ):
        problem = assert_problem(await api.get(path, headers=headers), 401)
        assert problem["detail"]
    response = await api.get(path)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", KEYED_GETS, ids=_route_id)
async def test_a_key_without_the_scope_is_403_and_one_with_it_gets_in(
    api: httpx.AsyncClient, keys: Keys, s_ids: dict[str, str], route: APIRoute
) -> None:
    scope = required_scope(route)
    holders = {
        Scope.READ: (keys.read, keys.sync),
        Scope.SYNC_WRITE: (keys.sync, keys.read),
        Scope.ADMIN: (keys.admin, keys.read),
    }
    assert scope in holders, f"{route.path} needs {scope}: which test key holds it?"
    holder, other = holders[scope]
    path = _path(route, s_ids)
    problem = assert_problem(await api.get(path, headers=bearer(other)), 403)
    assert scope in problem["detail"]
    for key in (holder, keys.admin):
        response = await api.get(path, headers=bearer(key))
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("route", [r for r in KEYED_GETS if _parameters(r)], ids=_route_id)
async def test_a_record_of_a_district_the_key_may_not_see_is_404(
    api: httpx.AsyncClient,
    keys: Keys,
    mirrored: Mirrored,
    limited: dict[tuple[Scope, str], str],
    s_ids: dict[str, str],
    route: APIRoute,
) -> None:
    unknown = [name for name in _parameters(route) if name not in s_ids]
    assert not unknown, f"add a record of the S district for {unknown} to `s_ids`"
    path = _path(route, s_ids)
    await get_json(api, path, _limited_key(route, limited, mirrored.s.id))
    unseen = await api.get(path, headers=bearer(_limited_key(route, limited, mirrored.other.id)))
    assert_problem(unseen, 404)
    assert_problem(await api.get(_path(route, {}), headers=bearer(keys.admin)), 404)


def _district_key(route: APIRoute) -> str | None:
    """The key naming the district of each row the list returns, if its rows have one."""
    if route.path == "/v1/districts":
        return "id"
    model = route.response_model
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    data = model.model_fields.get("data") if is_model else None
    (item,) = get_args(data.annotation) if data is not None else (None,)
    has_district = isinstance(item, type) and "district_id" in getattr(item, "model_fields", {})
    return "district_id" if has_district else None


@pytest.mark.parametrize("route", [r for r in KEYED_GETS if not _parameters(r)], ids=_route_id)
async def test_lists_show_only_the_keys_districts(
    api: httpx.AsyncClient,
    mirrored: Mirrored,
    limited: dict[tuple[Scope, str], str],
    route: APIRoute,
) -> None:
    for district_id, other_id in (
        (mirrored.s.id, mirrored.other.id),
        (mirrored.other.id, mirrored.s.id),
    ):
        key = _limited_key(route, limited, district_id)
        page: dict[str, object] = {"limit": 1000} if _takes_query(route, "limit") else {}
        if _takes_query(route, "by"):
            page["by"] = "district"  # a summary's rows then name their district
        body = await get_json(api, route.path, key, **page)
        district_key = _district_key(route)
        if district_key is None:
            continue  # a summary, not records
        assert body["data"], f"{route.path} shows nothing of {district_id}"
        assert {row[district_key] for row in body["data"]} == {district_id}

        # Asking for another district does not widen what a key sees.
        if _takes_query(route, "district_id"):
            body = await get_json(api, route.path, key, district_id=other_id)
            assert body["data"] == []


def _students(body: object) -> Iterator[dict[str, object]]:
    """Every student object anywhere in an answer."""
    if isinstance(body, dict):
        roles = body.get("roles")
        if isinstance(roles, list) and "student" in roles:
            yield body
        for value in body.values():
            yield from _students(value)
    elif isinstance(body, list):
        for item in body:
            yield from _students(item)


async def test_sensitive_fields_show_on_every_route_only_to_keys_with_the_scope(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, s_ids: dict[str, str]
) -> None:
    routes_with_students = []
    teacher = mirrored.s.truth.section_teacher_ids(s_ids["section_id"])[0]
    for route in KEYED_GETS:
        if required_scope(route) is not Scope.READ:
            continue
        ids = s_ids | ({"user_id": teacher} if route.path.startswith("/v1/teachers/") else {})
        path = _path(route, ids)
        params: dict[str, str | int] = {"limit": 1000} if _takes_query(route, "limit") else {}
        if _takes_query(route, "district_id"):
            params["district_id"] = mirrored.s.id
        shown = await api.get(path, params=params, headers=bearer(keys.sensitive))
        hidden = await api.get(path, params=params, headers=bearer(keys.read))
        assert shown.status_code == hidden.status_code == 200, (path, shown.text[:200])
        with_scope, without = list(_students(shown.json())), list(_students(hidden.json()))
        assert len(with_scope) == len(without), path
        if not with_scope:
            continue
        routes_with_students.append(route.path)
        assert all("sensitive" in student for student in with_scope), path
        assert any(student["sensitive"] is not None for student in with_scope), path
        assert not any("sensitive" in student for student in without), path
    assert len(routes_with_students) >= 5, routes_with_students

    # A district that keeps no sensitive fields has none to show, whatever the key.
    other = await get_json(
        api, "/v1/users", keys.sensitive, district_id=mirrored.other.id, role="student"
    )
    assert other["data"] and all(user["sensitive"] is None for user in other["data"])


WRITE_ROUTES = [
    r
    for r in ROUTES
    if (r.methods or set()) - {"GET", "HEAD"} and required_scope(r) in (Scope.WRITE, Scope.ADMIN)
]


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
async def test_every_local_edit_needs_a_key_with_its_scope(
    api: httpx.AsyncClient, keys: Keys, s_ids: dict[str, str], route: APIRoute
) -> None:
    """No key is 401 and a key without the scope 403, before the body is even read; a holder
    of the scope gets past both (what it gets is the routes' own tests' business)."""
    method = sorted(route.methods or ())[0]
    path = _path(route, s_ids)
    assert_problem(await api.request(method, path, json={}), 401)
    for other in (keys.read, keys.sync, keys.sensitive):
        problem = assert_problem(
            await api.request(method, path, json={}, headers=bearer(other)), 403
        )
        assert str(required_scope(route)) in problem["detail"]
    # Ids of no record, so nothing is changed.
    answered = await api.request(method, _path(route, {}), json={}, headers=bearer(keys.admin))
    assert answered.status_code not in (401, 403), answered.text


def test_the_local_edit_routes_are_all_checked() -> None:
    assert {f"{sorted(r.methods or ())[0]} {r.path}" for r in WRITE_ROUTES} >= {
        "PUT /v1/users/{user_id}/overrides",
        "DELETE /v1/sections/{section_id}/overrides",
        "POST /v1/groups",
        "POST /v1/sections/{section_id}/split",
        "POST /v1/people/merge",
        "PATCH /v1/districts/{district_id}",
    }
