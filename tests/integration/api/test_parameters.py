"""What the API does with query parameters it does not take or cannot read."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import get_json, get_problem


@pytest.mark.parametrize(
    ("path", "params", "unknown"),
    [
        ("/v1/users", {"school": "x", "role": "student"}, ["school"]),
        ("/v1/sections", {"limits": "5", "term": "t"}, ["limits", "term"]),
        ("/v1/districts/{district}", {"include_inactives": "true"}, ["include_inactives"]),
        ("/v1/sync/runs", {"state": "held"}, ["state"]),
    ],
)
async def test_a_parameter_the_endpoint_does_not_take_is_422(
    api: httpx.AsyncClient,
    keys: Keys,
    mirrored: Mirrored,
    path: str,
    params: dict[str, str],
    unknown: list[str],
) -> None:
    path = path.format(district=mirrored.s.id)
    problem = await get_problem(api, path, keys.admin, 422, **params)
    assert [error["loc"] for error in problem["errors"]] == [["query", name] for name in unknown]
    assert {error["type"] for error in problem["errors"]} == {"extra_forbidden"}


async def test_declared_parameters_of_dependencies_are_known(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored
) -> None:
    # `limit`, `cursor` and `updated_since` come from shared dependencies, not the endpoint.
    page = await get_json(
        api, "/v1/districts", keys.read, limit=1, updated_since="2000-01-01T00:00:00Z"
    )
    assert [district["id"] for district in page["data"]] == [min(mirrored.s.id, mirrored.other.id)]
    rest = await get_json(api, "/v1/districts", keys.read, cursor=page["next_cursor"])
    assert [district["id"] for district in rest["data"]] == [max(mirrored.s.id, mirrored.other.id)]


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2024-01-01", "yesterday", "T10:00"])
async def test_updated_since_is_an_iso_date_time_only(
    api: httpx.AsyncClient, keys: Keys, value: str
) -> None:
    problem = await get_problem(api, "/v1/users", keys.read, 422, updated_since=value)
    assert [error["loc"] for error in problem["errors"]] == [["query", "updated_since"]]


@pytest.mark.parametrize(
    ("value", "count"),
    [("2000-01-01T00:00:00", 2), ("2000-01-01 00:00+02:00", 2), ("2999-01-01T00:00:00Z", 0)],
)
async def test_updated_since_takes_date_times_with_or_without_offset(
    api: httpx.AsyncClient, keys: Keys, mirrored: Mirrored, value: str, count: int
) -> None:
    page = await get_json(api, "/v1/districts", keys.read, updated_since=value)
    assert len(page["data"]) == count


async def test_a_request_without_a_key_is_401_whatever_its_parameters(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/v1/users", params={"bogus": "1", "limit": "5000"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
