"""Hostile HTTP before any route: large and slow bodies, trailing slashes, response headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.settings import Settings
from tests.support.app import app_client

PROBLEM = "application/problem+json"
LIMIT = 4096


@pytest.fixture
async def guarded(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a small body limit and a short body timeout."""
    limited = {"api_max_body_bytes": LIMIT, "api_body_timeout_seconds": 0.5}
    async with app_client(settings.model_copy(update=limited)) as client:
        yield client


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == status


AUTH_HEADERS = [
    {},
    {"Authorization": "Bearer rk_not_a_key"},
    {"X-Roster-Timestamp": "1700000000", "X-Roster-Signature": "v1=" + "0" * 64},
]


@pytest.mark.parametrize("headers", AUTH_HEADERS, ids=["none", "key", "webhook"])
async def test_a_body_over_the_limit_is_413_before_authentication(
    guarded: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = b'{"district_id": "' + b"x" * LIMIT + b'"}'
    response = await guarded.post("/v1/sync", content=body, headers=headers)
    _assert_problem(response, 413)
    assert response.headers["connection"] == "close"
    assert str(LIMIT) in response.json()["detail"]


async def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit(
    guarded: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB, no Content-Length
            sent += 1024
            yield b"x" * 1024

    response = await guarded.post("/v1/sync", content=chunks())
    _assert_problem(response, 413)
    # The app stopped reading one chunk past the limit.
    assert sent <= LIMIT + 1024


async def test_a_body_within_the_limit_reaches_the_endpoint(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post("/v1/sync", json={"district_id": "d1"})
    _assert_problem(response, 401)


async def test_a_slow_body_times_out(guarded: httpx.AsyncClient) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"district_id":'
        await asyncio.sleep(2)
        yield b' "d1"}'

    response = await guarded.post("/v1/sync", content=trickle())
    _assert_problem(response, 408)


async def test_an_unreadable_content_length_is_400(guarded: httpx.AsyncClient) -> None:
    request = guarded.build_request("POST", "/v1/sync", content=b"{}")
    request.headers["Content-Length"] = "12abc"
    _assert_problem(await guarded.send(request), 400)


@pytest.mark.parametrize("path", ["/v1/districts/", "/v1/users/x/sections/", "/healthz/"])
async def test_a_trailing_slash_is_404_not_a_redirect_to_the_host_header(
    api_client: httpx.AsyncClient, path: str
) -> None:
    response = await api_client.get(path, headers={"Host": "evil.example"})
    _assert_problem(response, 404)
    assert "location" not in response.headers
    assert "evil.example" not in response.text


async def test_roster_answers_are_not_stored_or_sniffed(api_client: httpx.AsyncClient) -> None:
    for path, status in (("/v1/districts", 401), ("/v1/nothing", 404)):
        response = await api_client.get(path)
        assert response.status_code == status
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    health = await api_client.get("/healthz")
    assert health.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in health.headers
