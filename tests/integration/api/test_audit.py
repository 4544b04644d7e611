"""The audit trail of key use, and keys that expire or are rotated."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app import audit
from app.api.keys import RotationError, Scope, create_key, find_key, rotate_key
from app.settings import Settings
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import assert_problem, bearer
from tests.support.app import app_client


async def _events(api: httpx.AsyncClient, key: str, count: int, **params: Any) -> list[Any]:
    """The newest `count` audit events but the reads of the trail itself, waiting for the
    trail's next write."""
    for _ in range(50):
        response = await api.get("/v1/audit", headers=bearer(key), params=params)
        assert response.status_code == 200, response.text
        data = [e for e in response.json()["data"] if e["route"] != "/v1/audit"]
        if len(data) >= count:
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} audit events: {data}")


async def test_key_use_is_audited_by_route_template_without_values(
    api_settings: Settings,
    mirrored: Mirrored,
    keys: Keys,
    api_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    student = mirrored.s.truth.edge_cases["student_in_three_schools"]
    secret_guess = "rk_" + "guessed-secret-" * 3
    async with api_pool.acquire() as connection:
        grant = await find_key(connection, keys.read)
    assert grant is not None
    reader = grant.key_id
    async with app_client(api_settings, client_address="198.51.100.4") as api:
        since = (await api_pool.fetchval("SELECT now()")).isoformat()
        ok = await api.get(
            f"/v1/users/{student}/sections",
            headers=bearer(keys.read),
            params={"include_inactive": "true"},
        )
        assert ok.status_code == 200
        assert (await api.get("/v1/sync/runs", headers=bearer(keys.read))).status_code == 200
        with caplog.at_level(logging.WARNING, logger="app.api.auth"):
            assert_problem(await api.get("/v1/districts", headers=bearer(secret_guess)), 401)
        assert (await api.get("/healthz")).status_code == 200  # no key: not audited

        events = await _events(api, keys.admin, 3, since=since)
        assert [(e["method"], e["route"], e["status"]) for e in events[:3]] == [
            ("GET", "/v1/districts", 401),
            ("GET", "/v1/sync/runs", 200),
            ("GET", "/v1/users/{user_id}/sections", 200),
        ]
        failed, _, sections = events[:3]
        assert (failed["key_id"], failed["client"]) == (None, "198.51.100.4")
        assert sections["key_id"] == str(reader) and sections["key_name"] == "test roster:read"
        assert sections["client"] is None

        only_reader = await _events(api, keys.admin, 2, key_id=str(reader), since=since)
        assert {e["key_id"] for e in only_reader} == {str(reader)}
        only_failed = await _events(api, keys.admin, 1, status=401, since=since)
        assert {e["status"] for e in only_failed} == {401}

    # Nothing of the ids, the query or the presented secret is kept, or logged.
    stored = await api_pool.fetchval(
        "SELECT string_agg(row_to_json(a)::text, ' ') FROM audit_events a"
    )
    for value in (student, "include_inactive", secret_guess, secret_guess[:12]):
        assert value not in stored
    failures = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert failures and failures[-1].__dict__["client"] == "198.51.100.4"
    assert secret_guess[:12] not in caplog.text


async def test_the_audit_trail_is_for_admins_and_their_districts(
    api_settings: Settings, mirrored: Mirrored, keys: Keys, api_pool: asyncpg.Pool
) -> None:
    async with api_pool.acquire() as connection:
        s_admin = await create_key(
            connection, name="s admin", scopes=[Scope.ADMIN], district_ids=[mirrored.s.id]
        )
    async with app_client(api_settings) as api:
        assert_problem(await api.get("/v1/audit", headers=bearer(keys.read)), 403)
        assert (await api.get("/v1/districts", headers=bearer(keys.read_other))).status_code == 200
        assert (await api.get("/v1/districts", headers=bearer(keys.read_s))).status_code == 200
        assert_problem(await api.get("/v1/districts", headers=bearer("rk_nobody")), 401)
        await _events(api, keys.admin, 3)
        async with api_pool.acquire() as connection:
            read_s, read_other = [
                await find_key(connection, k) for k in (keys.read_s, keys.read_other)
            ]
        assert read_s is not None and read_other is not None
        # The S district's reader's use shows; the other district's reader's does not.
        assert await _events(api, s_admin.secret, 1, key_id=str(read_s.key_id))
        hidden = await api.get(
            "/v1/audit", params={"key_id": str(read_other.key_id)}, headers=bearer(s_admin.secret)
        )
        assert hidden.status_code == 200 and hidden.json()["data"] == []
        seen = await _events(api, s_admin.secret, 1)
        assert_problem(
            await api.get("/v1/audit", params={"cursor": "x"}, headers=bearer(keys.admin)), 422
        )
    # Only the use of keys within the S district, nor failed authentications.
    districts = await api_pool.fetch(
        "SELECT prefix, district_ids FROM api_keys WHERE id = ANY($1::uuid[])",
        [e["key_id"] for e in seen if e["key_id"] is not None],
    )
    assert all(e["key_id"] is not None for e in seen)
    assert {d for row in districts for d in row["district_ids"]} == {mirrored.s.id}


async def test_old_events_are_pruned(api_pool: asyncpg.Pool) -> None:
    await api_pool.execute(
        "INSERT INTO audit_events (at, method, route, status) VALUES"
        " (now() - interval '40 days', 'GET', '/old', 200), (now(), 'GET', '/new', 200)"
    )
    async with api_pool.acquire() as connection:
        assert await audit.prune(connection, retention_days=30) >= 1
    routes = {r["route"] for r in await api_pool.fetch("SELECT route FROM audit_events")}
    assert "/new" in routes and "/old" not in routes


async def _key(connection: asyncpg.Connection, **kwargs: Any) -> tuple[str, str]:
    created = await create_key(
        connection, name=f"lifecycle {uuid.uuid4().hex[:6]}", scopes=[Scope.READ], **kwargs
    )
    return str(created.info.id), created.secret


async def test_an_expired_key_is_refused_even_from_the_cache(
    api_settings: Settings, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    async with api_pool.acquire() as connection:
        _, secret = await _key(connection, expires_in=timedelta(seconds=1.5))
        listed = await connection.fetchval(
            "SELECT expires_at - created_at FROM api_keys WHERE prefix = $1", secret[:10]
        )
    assert listed == timedelta(seconds=1.5)
    cached = api_settings.model_copy(update={"api_key_cache_seconds": 300.0})
    async with app_client(cached) as api:
        assert (await api.get("/v1/districts", headers=bearer(secret))).status_code == 200
        await asyncio.sleep(1.6)
        body = assert_problem(await api.get("/v1/districts", headers=bearer(secret)), 401)
        assert "expired" in body["detail"]


async def test_a_rotated_key_lives_through_its_grace_period_and_its_successor_on(
    api_settings: Settings, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    async with api_pool.acquire() as connection:
        old_id, old_secret = await _key(
            connection, district_ids=[mirrored.s.id], expires_in=timedelta(days=90)
        )
        old, successor = await rotate_key(connection, old_id, grace=timedelta(seconds=1))
        assert old.replaced_by == successor.info.id
        assert successor.info.scopes == ("roster:read",)
        assert successor.info.district_ids == (mirrored.s.id,)
        assert successor.info.expires_at is not None and successor.info.created_at is not None
        assert successor.info.expires_at - successor.info.created_at == timedelta(days=90)
        with pytest.raises(RotationError, match="rotated already"):
            await rotate_key(connection, old_id, grace=timedelta(days=1))
    async with app_client(api_settings) as api:
        for secret in (old_secret, successor.secret):
            assert (await api.get("/v1/districts", headers=bearer(secret))).status_code == 200
        await asyncio.sleep(1.1)
        assert_problem(await api.get("/v1/districts", headers=bearer(old_secret)), 401)
        assert (await api.get("/v1/districts", headers=bearer(successor.secret))).status_code == 200


async def test_a_revoked_or_unknown_key_cannot_be_rotated(
    api_pool: asyncpg.Pool, keys: Keys
) -> None:
    async with api_pool.acquire() as connection:
        with pytest.raises(RotationError, match="is revoked"):
            await rotate_key(connection, keys.revoked[:10], grace=timedelta(days=1))
        with pytest.raises(RotationError, match="no key"):
            await rotate_key(connection, "rk_nothing", grace=timedelta(days=1))
