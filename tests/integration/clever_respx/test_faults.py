"""Status handling, retries, rate limits, pacing and timeouts."""

from __future__ import annotations

import logging
import random
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import respx

from app.clever import (
    CleverAuthError,
    CleverClient,
    CleverRequestError,
    CleverTransientError,
)
from app.clever.pacing import MAX_RATE_LIMIT_WAIT_SECONDS
from tests.integration.clever_respx.conftest import DISTRICT_ID, error, make_client, ok, page
from tests.unit.clever.fakes import FakeClock

USERS = "/v3.0/users"


async def read_users(client: CleverClient) -> list[str]:
    return [user.id async for p in client.iter_pages("users") for user in p.records]


async def test_401_raises_a_clear_auth_error_without_retrying(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get(USERS).mock(return_value=error(401, "invalid token"))

    with pytest.raises(CleverAuthError) as caught:
        await read_users(client)

    assert caught.value.message == f"token rejected for district {DISTRICT_ID}"
    assert str(caught.value) == (
        f"token rejected for district {DISTRICT_ID} (GET /v3.0/users?limit=2 -> 401)"
    )
    assert (caught.value.method, caught.value.path, caught.value.status) == (
        "GET",
        "/v3.0/users?limit=2",
        401,
    )
    assert route.call_count == 1


async def test_401_names_an_unknown_district(router: respx.MockRouter, clock: FakeClock) -> None:
    router.get("/v3.0/districts").mock(return_value=error(401))

    async with make_client(clock, district_id=None) as clever:
        with pytest.raises(CleverAuthError, match="token rejected for district unknown"):
            [d async for d in clever.iter_pages("districts")]


@pytest.mark.parametrize("status", [400, 413, 501, 403, 404, 409, 302])
async def test_permanent_statuses_are_never_retried(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock, status: int
) -> None:
    route = router.get(USERS).mock(return_value=error(status, "limit too large"))

    with pytest.raises(CleverRequestError) as caught:
        await read_users(client)

    assert caught.value.status == status
    assert caught.value.path == "/v3.0/users?limit=2"
    assert "limit too large" in str(caught.value)
    assert route.call_count == 1
    assert client.request_count == 1
    assert clock.waits() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_are_retried_with_backoff(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock, status: int
) -> None:
    route = router.get(USERS).mock(
        side_effect=[error(status), error(status), ok(page({"id": "u1"}))]
    )

    assert await read_users(client) == ["u1"]
    assert route.call_count == 3
    assert client.request_count == 3
    assert clock.waits() == [0.5, 1.0]


async def test_server_errors_give_up_after_max_retries(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    route = router.get(USERS).mock(return_value=error(503))

    with pytest.raises(CleverTransientError) as caught:
        await read_users(client)

    assert route.call_count == 4
    assert client.request_count == 4
    assert caught.value.attempts == 4
    assert caught.value.status == 503
    assert clock.waits() == [0.5, 1.0, 2.0]


async def test_backoff_is_capped(router: respx.MockRouter, clock: FakeClock) -> None:
    router.get(USERS).mock(return_value=error(500))

    async with make_client(clock, max_retries=6, backoff_max_seconds=3.0) as clever:
        with pytest.raises(CleverTransientError):
            await read_users(clever)

    assert clock.waits() == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


async def test_backoff_jitter_stays_within_the_exponential_ceiling(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.get(USERS).mock(return_value=error(502))

    async with make_client(clock, max_retries=5, rng=random.Random(1)) as clever:
        with pytest.raises(CleverTransientError):
            await read_users(clever)

    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(clock.sleeps) == len(ceilings)
    assert all(0 < delay <= ceiling for delay, ceiling in zip(clock.sleeps, ceilings, strict=True))
    assert clock.sleeps != ceilings


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError],
)
async def test_timeouts_and_connection_errors_are_retried(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock, failure: type[Exception]
) -> None:
    route = router.get(USERS).mock(side_effect=[failure, failure, ok(page({"id": "u1"}))])

    assert await read_users(client) == ["u1"]
    assert route.call_count == 3
    assert clock.waits() == [0.5, 1.0]


async def test_timeouts_give_up_with_a_transient_error(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get(USERS).mock(side_effect=httpx.ReadTimeout)

    with pytest.raises(CleverTransientError, match="ReadTimeout") as caught:
        await read_users(client)

    assert route.call_count == 4
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize("body", [b'{"data": [{"data": {"id": "u1"', b"", b"<html>bad gateway"])
async def test_an_undecodable_200_body_is_retried(
    router: respx.MockRouter, client: CleverClient, body: bytes
) -> None:
    route = router.get(USERS).mock(
        side_effect=[httpx.Response(200, content=body), ok(page({"id": "u1"}))]
    )

    assert await read_users(client) == ["u1"]
    assert route.call_count == 2


async def test_an_always_undecodable_body_gives_up(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get(USERS).mock(return_value=httpx.Response(200, content=b'{"data": ['))

    with pytest.raises(CleverTransientError, match="undecodable JSON") as caught:
        await read_users(client)
    assert caught.value.status == 200


async def test_429_waits_until_x_ratelimit_reset(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    reset = str(int(clock.now) + 30)
    route = router.get(USERS).mock(
        side_effect=[error(429, **{"X-RateLimit-Reset": reset}), ok(page({"id": "u1"}))]
    )

    assert await read_users(client) == ["u1"]
    assert clock.waits() == [30.0]
    assert route.call_count == 2
    assert client.request_count == 2


async def test_429_waits_for_retry_after_seconds(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    router.get(USERS).mock(side_effect=[error(429, **{"Retry-After": "7"}), ok(page())])

    await read_users(client)

    assert clock.waits() == [7.0]


async def test_429_retry_after_wins_over_x_ratelimit_reset(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    headers = {"Retry-After": "3", "X-RateLimit-Reset": str(int(clock.now) + 50)}
    router.get(USERS).mock(side_effect=[error(429, **headers), ok(page())])

    await read_users(client)

    assert clock.waits() == [3.0]


async def test_429_accepts_an_http_date_retry_after(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    when = formatdate(clock.now + 12, usegmt=True)
    router.get(USERS).mock(side_effect=[error(429, **{"Retry-After": when}), ok(page())])

    await read_users(client)

    assert clock.waits() == [12.0]


async def test_429_without_headers_backs_off(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    router.get(USERS).mock(side_effect=[error(429), ok(page())])

    await read_users(client)

    assert clock.waits() == [0.5]


async def test_429_waits_are_capped(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    router.get(USERS).mock(side_effect=[error(429, **{"Retry-After": "86400"}), ok(page())])

    await read_users(client)

    assert clock.waits() == [MAX_RATE_LIMIT_WAIT_SECONDS]


async def test_429_forever_gives_up(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    router.get(USERS).mock(return_value=error(429, **{"Retry-After": "2"}))

    with pytest.raises(CleverTransientError, match="rate limited") as caught:
        await read_users(client)

    assert caught.value.status == 429
    assert caught.value.attempts == 4
    assert clock.waits() == [2.0, 2.0, 2.0]


async def test_requests_in_quick_succession_are_paced(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.get("/v3.0/courses/c1").mock(return_value=ok({"data": {"id": "c1"}}))
    count, per_minute = 10, 600

    async with make_client(clock, requests_per_minute=per_minute) as clever:
        for _ in range(count):
            await clever.get("courses", "c1")

    assert clever.request_count == count
    assert len(clock.sleeps) == count - 1
    assert sum(clock.sleeps) == pytest.approx((count - 1) * 60 / per_minute)


async def test_a_429_also_holds_back_the_following_requests(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.get("/v3.0/courses/c1").mock(
        side_effect=[error(429, **{"Retry-After": "5"}), ok({"data": {"id": "c1"}})]
    )
    router.get("/v3.0/courses/c2").mock(return_value=ok({"data": {"id": "c2"}}))

    async with make_client(clock, requests_per_minute=60) as clever:
        start = clock.now
        await clever.get("courses", "c1")
        await clever.get("courses", "c2")

    assert clock.sleeps == pytest.approx([5.0, 1.0])
    assert clock.now - start == pytest.approx(6.0)


async def test_retries_and_waits_are_logged_with_path_and_status(
    router: respx.MockRouter, client: CleverClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.clever")
    router.get(USERS).mock(
        side_effect=[error(503), error(429, **{"Retry-After": "4"}), ok(page({"id": "u1"}))]
    )

    await read_users(client)

    records = [r for r in caplog.records if r.name == "app.clever"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "/v3.0/users?limit=2" in records[0].getMessage()
    assert "status 503" in records[0].getMessage()
    assert "429" in records[1].getMessage()
    fields: dict[str, Any] = records[1].__dict__
    assert fields["clever_path"] == "/v3.0/users?limit=2"
    assert fields["clever_status"] == 429
    assert fields["wait_seconds"] == 4.0


async def test_every_request_has_explicit_timeouts(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    route = router.get("/v3.0/terms/t1").mock(return_value=ok({"data": {"id": "t1"}}))

    async with make_client(clock, timeout_seconds=25.0) as clever:
        await clever.get("terms", "t1")

    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 10.0,
        "read": 25.0,
        "write": 25.0,
        "pool": 25.0,
    }


async def test_an_injected_http_client_is_used_and_left_open(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"data": {"id": "d1"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http_client:
        async with make_client(clock, http_client=http_client) as clever:
            await clever.get("districts", "d1")
        assert not http_client.is_closed

    assert [str(request.url) for request in seen] == ["https://api.clever.test/v3.0/districts/d1"]
    assert "read" in seen[0].extensions["timeout"]


async def test_an_injected_transport_is_used_and_the_client_closed(clock: FakeClock) -> None:
    transport = httpx.MockTransport(lambda request: ok({"data": {"id": "d1"}}))
    clever = make_client(clock, transport=transport)

    async with clever:
        assert await clever.get("districts", "d1") is not None

    with pytest.raises(RuntimeError, match="closed"):
        await clever.get("districts", "d1")


async def test_client_options_are_validated(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        make_client(clock, requests_per_minute=0)
    with pytest.raises(ValueError, match="timeout"):
        make_client(clock, timeout_seconds=0)
    with pytest.raises(ValueError, match="max_retries"):
        make_client(clock, max_retries=-1)
    transport = httpx.MockTransport(lambda request: ok({}))
    async with httpx.AsyncClient(transport=transport) as http_client:
        with pytest.raises(ValueError, match="not both"):
            make_client(clock, http_client=http_client, transport=transport)
