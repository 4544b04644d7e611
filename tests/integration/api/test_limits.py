"""Rate limits per key and lock-outs per address, counted in Redis across API processes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from app.api.limits import Limits
from app.api.problems import ProblemError
from app.settings import Settings
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import assert_problem, bearer
from tests.support.app import app_client

PER_MINUTE = 5


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    async for key in client.scan_iter("roster:limits:*"):
        await client.delete(key)
    await client.aclose()


def _limited(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(
        update={
            "api_rate_limit_per_minute": PER_MINUTE,
            "api_auth_failures_before_lockout": 3,
            "api_auth_lockout_seconds": 60,
            **changes,
        }
    )


async def _spend_a_minute(
    replicas: list[httpx.AsyncClient], key: str
) -> list[httpx.Response] | None:
    """PER_MINUTE + 1 requests spread over the replicas, or None when a clock minute
    turned over meanwhile (the budget came back whole; the caller tries again)."""
    window = int(time.time() // 60)
    responses = [
        await replicas[n % len(replicas)].get("/v1/districts", headers=bearer(key))
        for n in range(PER_MINUTE + 1)
    ]
    return responses if int(time.time() // 60) == window else None


async def test_a_key_over_its_minute_is_429_with_retry_after_across_replicas(
    api_settings: Settings, mirrored: Mirrored, keys: Keys, redis: Redis
) -> None:
    settings = _limited(api_settings)
    async with app_client(settings) as one, app_client(settings) as two:
        responses = await _spend_a_minute([one, two], keys.read)
        if responses is None:
            await redis.flushdb()
            responses = await _spend_a_minute([one, two], keys.read)
        assert responses is not None
        *admitted, refused = responses
        assert [r.status_code for r in admitted] == [200] * PER_MINUTE
        remaining = [int(r.headers["RateLimit-Remaining"]) for r in admitted]
        assert remaining == list(range(PER_MINUTE - 1, -1, -1)), "one count across replicas"
        for response in admitted:
            assert response.headers["RateLimit-Limit"] == str(PER_MINUTE)
            assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
        body = assert_problem(refused, 429)
        assert "retry after" in body["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"

        # Another key has its own budget.
        other = await one.get("/v1/districts", headers=bearer(keys.admin))
        assert other.status_code == 200


async def test_repeated_bad_keys_lock_the_address_out(
    api_settings: Settings, mirrored: Mirrored, keys: Keys, redis: Redis
) -> None:
    settings = _limited(api_settings, api_rate_limit_per_minute=0)
    async with (
        app_client(settings, client_address="192.0.2.7") as guesser,
        app_client(settings, client_address="192.0.2.8") as neighbour,
    ):
        for attempt in range(3):
            bad = await guesser.get("/v1/districts", headers=bearer(f"rk_guess{attempt}"))
            assert_problem(bad, 401)
        # Locked out now, whatever key the address sends, the right one included.
        locked = await guesser.get("/v1/districts", headers=bearer(keys.read))
        body = assert_problem(locked, 429)
        assert "this address" in body["detail"]
        assert 1 <= int(locked.headers["Retry-After"]) <= 60
        # A revoked key counts as a bad one, and another address is not affected.
        assert_problem(await neighbour.get("/v1/districts", headers=bearer(keys.revoked)), 401)
        assert (await neighbour.get("/v1/districts", headers=bearer(keys.read))).status_code == 200


async def test_limits_fail_open_when_redis_is_unreachable(
    api_settings: Settings, mirrored: Mirrored, keys: Keys
) -> None:
    settings = _limited(api_settings, redis_url="redis://127.0.0.1:1/0")
    async with app_client(settings) as api:
        for _ in range(PER_MINUTE + 2):
            response = await api.get("/v1/districts", headers=bearer(keys.read))
            assert response.status_code == 200
            assert "RateLimit-Limit" not in response.headers


async def test_the_budget_comes_back_at_the_next_minute(redis: Redis) -> None:
    now = [1_800_000_030.0]  # 30 s into a minute
    limits = Limits(
        redis,
        per_minute=2,
        failures_before_lockout=0,
        lockout_seconds=60,
        clock=lambda: now[0],
    )
    first = await limits.admit("k")
    assert first is not None and (first.remaining, first.reset_seconds) == (1, 30)
    assert await limits.admit("k") is not None
    with pytest.raises(ProblemError) as refused:
        await limits.admit("k")
    assert refused.value.status == 429
    assert (refused.value.headers or {}).get("Retry-After") == "30"
    now[0] += 30
    again = await limits.admit("k")
    assert again is not None and (again.remaining, again.reset_seconds) == (1, 60)


async def test_a_lock_out_counted_by_another_replica_holds_here_within_a_second(
    redis: Redis,
) -> None:
    now = [1_800_000_000.0]

    def limits() -> Limits:
        return Limits(
            redis, per_minute=0, failures_before_lockout=2, lockout_seconds=60, clock=lambda: now[0]
        )

    here, there = limits(), limits()
    await here.check_lockout("192.0.2.9")  # not locked out: trusted for a second
    await there.failed("192.0.2.9")
    await there.failed("192.0.2.9")
    with pytest.raises(ProblemError):
        await there.check_lockout("192.0.2.9")  # counted there: at once
    await here.check_lockout("192.0.2.9")  # here, still what Redis said a moment ago
    now[0] += 1.0
    with pytest.raises(ProblemError) as refused:
        await here.check_lockout("192.0.2.9")
    assert refused.value.status == 429
    assert 1 <= int((refused.value.headers or {})["Retry-After"]) <= 60
