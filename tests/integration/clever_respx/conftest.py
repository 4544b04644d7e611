"""Fixtures for the Clever client tests: Clever mocked with respx at the HTTP boundary,
waits on a fake clock. Nothing here touches the network: respx refuses any request that
no route matches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.clever import CleverClient
from tests.unit.clever.fakes import FakeClock, MaxJitter

BASE_URL = "https://api.clever.test"
TOKEN = "tok-7f3a9c-super-secret-district-token"
DISTRICT_ID = "5f1e8d7c6b5a4f3e2d1c0b9a"


def make_client(
    clock: FakeClock, *, token: SecretStr | str = TOKEN, **overrides: Any
) -> CleverClient:
    """A client against BASE_URL whose waits go to `clock`.

    Pacing is set so high that its microsecond waits never count as `clock.waits()`, and
    the jitter always takes the top of its range, so backoff delays are exact:
    0.5, 1, 2, 4... seconds.
    """
    options: dict[str, Any] = {
        "base_url": BASE_URL,
        "api_version": "v3.0",
        "district_id": DISTRICT_ID,
        "page_size": 2,
        "max_retries": 3,
        "requests_per_minute": 6_000_000,
        "clock": clock,
        "sleep": clock.sleep,
        "rng": MaxJitter(),
    }
    options.update(overrides)
    return CleverClient(token, **options)


def page(*records: dict[str, Any], next_uri: str | None = None) -> dict[str, Any]:
    """A Clever collection page body."""
    links = [{"rel": "self", "uri": "/v3.0/whatever"}]
    if next_uri is not None:
        links.append({"rel": "next", "uri": next_uri})
    return {
        "data": [{"data": record, "uri": f"/v3.0/x/{record.get('id')}"} for record in records],
        "links": links,
    }


def ok(body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def error(status: int, message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message} if message else {}, headers=headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: respx.MockRouter, clock: FakeClock) -> AsyncIterator[CleverClient]:
    async with make_client(clock) as clever:
        yield clever
