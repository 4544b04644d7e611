"""The access log: one line per request, with the route's template and the key's id, and
nothing of what the request asked for."""

from __future__ import annotations

import logging

import asyncpg
import httpx
import pytest

from app.api.keys import find_key
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import bearer


async def test_each_request_is_one_line_without_its_query_values(
    api: httpx.AsyncClient,
    keys: Keys,
    mirrored: Mirrored,
    api_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id = mirrored.s.truth.edge_cases["student_in_three_schools"]
    caplog.set_level(logging.INFO, logger="roster.access")
    answer = await api.get(
        f"/v1/users/{user_id}", params={"include_inactive": "true"}, headers=bearer(keys.read)
    )
    assert answer.status_code == 200
    assert (await api.get("/healthz")).status_code == 200
    lines = [record for record in caplog.records if record.name == "roster.access"]
    assert [(line.method, line.route, line.status) for line in lines] == [  # type: ignore[attr-defined]
        ("GET", "/v1/users/{user_id}", 200),
        ("GET", "/healthz", 200),
    ]
    async with api_pool.acquire() as connection:
        grant = await find_key(connection, keys.read)
    assert grant is not None
    key_id = str(grant.key_id)
    keyed, health = lines
    assert keyed.key_id == key_id and health.key_id is None  # type: ignore[attr-defined]
    assert keyed.duration_ms >= 0  # type: ignore[attr-defined]
    for line in lines:
        text = str(line.__dict__)
        assert user_id not in text and "include_inactive" not in text and keys.read not in text
