"""Hot reads kept in memory: served until a sync, an edit through any replica or any other
write of their district commits; ETags and 304s; never across keys that see differently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app.api.answers import CHANNEL
from app.api.keys import Scope, create_key
from tests.integration.api.sync_support import bearer
from tests.integration.sync_sandbox.local_support import Edited, first_record
from tests.support.app import app_client

# Notifications cross loopback in milliseconds; this is the most a test waits for one.
HEARD_WITHIN_SECONDS = 5.0


def _answers(source: str) -> float:
    return REGISTRY.get_sample_value("roster_api_answers_total", {"source": source}) or 0.0


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + HEARD_WITHIN_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"not within {HEARD_WITHIN_SECONDS} s: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def replicas(edited: Edited) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two API processes' apps over the edited district, each keeping answers."""
    settings = edited.deps.settings.model_copy(
        update={"api_answer_cache_mb": 8, "api_key_cache_seconds": 0.0}
    )
    async with app_client(settings) as one, app_client(settings) as two:
        yield one, two


async def _get(api: httpx.AsyncClient, path: str, key: str, **headers: str) -> httpx.Response:
    return await api.get(path, headers=bearer(key) | headers)


async def _kept(api: httpx.AsyncClient, path: str, key: str) -> httpx.Response:
    """The answer once the replica is listening and keeps it (the second read is kept)."""

    async def kept_now() -> bool:
        await _get(api, path, key)
        before = _answers("kept")
        await _get(api, path, key)
        return _answers("kept") == before + 1

    await _eventually(kept_now, "the replica keeps answers")
    return await _get(api, path, key)


async def test_a_kept_answer_follows_edits_on_any_replica_and_syncs(
    edited: Edited, replicas: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    one, two = replicas
    section = first_record(edited.district, "sections")
    teacher, student = section["teacher"], section["students"][0]
    path = f"/v1/teachers/{teacher}/students"
    first = await _kept(one, path, edited.reader)
    assert first.status_code == 200 and student in first.text

    # The same bytes from memory, with the same tag; the tag gets a 304 with no body.
    kept_before = _answers("kept")
    again = await _get(one, path, edited.reader)
    assert _answers("kept") == kept_before + 1
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    etag = first.headers["etag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = await _get(one, path, edited.reader, **{"If-None-Match": sent})
        assert not_modified.status_code == 304 and not_modified.content == b"", sent
        assert not_modified.headers["etag"] == etag
    other_tag = await _get(one, path, edited.reader, **{"If-None-Match": '"other"'})
    assert other_tag.status_code == 200 and other_tag.content == first.content

    # An edit through this replica shows in its very next read.
    edit = await one.put(
        f"/v1/users/{student}/overrides",
        json={"preferred_name": "Kept Here"},
        headers=bearer(edited.writer),
    )
    assert edit.status_code == 200, edit.text
    edited_here = await _get(one, path, edited.reader)
    assert "Kept Here" in edited_here.text
    assert edited_here.headers["etag"] != etag
    stale = await _get(one, path, edited.reader, **{"If-None-Match": etag})
    assert stale.status_code == 200

    # An edit through the other replica reaches this one through Postgres.
    await _kept(one, path, edited.reader)
    edit = await two.put(
        f"/v1/users/{student}/overrides",
        json={"preferred_name": "Kept There"},
        headers=bearer(edited.writer),
    )
    assert edit.status_code == 200, edit.text

    async def shows_there() -> bool:
        return "Kept There" in (await _get(one, path, edited.reader)).text

    await _eventually(shows_there, "the other replica's edit")

    # So does a sync that changed the district.
    await _kept(one, path, edited.reader)
    edited.district.update(student, {"name": {"last": "Synced"}})
    await edited.incremental()

    async def shows_synced() -> bool:
        return '"Synced"' in (await _get(one, path, edited.reader)).text

    await _eventually(shows_synced, "the sync's change")


async def test_a_kept_answer_is_never_served_to_a_key_that_sees_otherwise(
    edited: Edited, replicas: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    one, _ = replicas
    section = first_record(edited.district, "sections")
    for path in (
        f"/v1/teachers/{section['teacher']}/students",
        f"/v1/users/{section['students'][0]}/sections/by-term",
    ):
        kept = await _kept(one, path, edited.reader)
        assert kept.status_code == 200
        elsewhere = await _get(one, path, edited.elsewhere)
        assert elsewhere.status_code == 404, path
        tagged = await _get(one, path, edited.elsewhere, **{"If-None-Match": "*"})
        assert tagged.status_code == 404, path
        admin = await _get(one, path, edited.admin)
        assert admin.status_code == 200


async def test_a_change_of_another_district_keeps_the_answer(
    edited: Edited, replicas: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    one, _ = replicas
    student = first_record(edited.district, "sections")["students"][0]
    path = f"/v1/users/{student}/sections/by-term"
    await _kept(one, path, edited.reader)
    await edited.pool.execute("SELECT pg_notify($1, 'another-district')", CHANNEL)
    await asyncio.sleep(0.5)  # heard by now
    before = _answers("kept")
    await _get(one, path, edited.reader)
    assert _answers("kept") == before + 1

    await edited.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, edited.district.id)

    async def read_again() -> bool:
        before = _answers("read")
        await _get(one, path, edited.reader)
        return _answers("read") == before + 1

    await _eventually(read_again, "the district's change")


async def test_a_sync_notifies_its_own_district_only(edited: Edited) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(str(edited.deps.settings.asyncpg_database_url))
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
        edited.district.update(
            first_record(edited.district, "sections")["students"][0], {"name": {"last": "Once"}}
        )
        await edited.full()
        await edited.incremental()

        async def heard_it() -> bool:
            return edited.district.id in heard

        await _eventually(heard_it, "the sync's notification")
        await asyncio.sleep(0.2)
        assert set(heard) == {edited.district.id}
    finally:
        await listener.close()


async def test_nothing_is_served_from_memory_while_the_listener_is_away(
    edited: Edited, replicas: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    one, _ = replicas
    path = f"/v1/teachers/{first_record(edited.district, 'sections')['teacher']}/students"
    await _kept(one, path, edited.reader)
    listeners = await edited.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'roster-api-listener'"
    )
    assert listeners == 2  # one per replica

    async def read_from_postgres() -> bool:
        before = _answers("read")
        await _get(one, path, edited.reader)
        return _answers("read") == before + 1

    await _eventually(read_from_postgres, "the listener's loss")
    # Back once it listens again (a second later), and kept again.
    await _kept(one, path, edited.reader)


@pytest.fixture
async def trusting(edited: Edited) -> AsyncIterator[httpx.AsyncClient]:
    """A replica that trusts looked-up keys for a while (the default), so kept answers are
    served before routing; rate limit and lock-out on, from a client address of its own."""
    settings = edited.deps.settings.model_copy(
        update={
            "api_answer_cache_mb": 8,
            "api_key_cache_seconds": 30.0,
            "api_rate_limit_per_minute": 10_000,
            "api_auth_failures_before_lockout": 3,
        }
    )
    async with app_client(settings, client_address="192.0.2.44") as api:
        yield api
    redis = Redis.from_url(settings.require_redis_url())
    async for key in redis.scan_iter("roster:limits:*"):
        await redis.delete(key)
    await redis.aclose()


def _requests_of(route: str) -> float:
    return sum(
        REGISTRY.get_sample_value(
            "roster_http_requests_total", {"route": route, "method": "GET", "status": status}
        )
        or 0.0
        for status in ("200", "304")
    )


async def test_a_kept_answer_before_routing_is_the_routes_answer_with_its_checks(
    edited: Edited, trusting: httpx.AsyncClient
) -> None:
    section = first_record(edited.district, "sections")
    path = f"/v1/teachers/{section['teacher']}/students"
    route = "/v1/teachers/{user_id}/students"
    read = await _get(trusting, path, edited.reader)
    kept = await _kept(trusting, path, edited.reader)
    assert kept.content == read.content and kept.headers["etag"] == read.headers["etag"]
    for name in ("content-type", "cache-control", "x-content-type-options", "ratelimit-limit"):
        assert kept.headers[name] == read.headers[name], name
    assert int(kept.headers["ratelimit-remaining"]) < int(read.headers["ratelimit-remaining"])

    # Counted under its route, and audited as the key's use of it.
    before = _requests_of(route)
    assert (await _get(trusting, path, edited.reader)).status_code == 200
    not_modified = await _get(
        trusting, path, edited.reader, **{"If-None-Match": read.headers["etag"]}
    )
    assert not_modified.status_code == 304
    assert _requests_of(route) == before + 2

    async def audited() -> bool:
        count = await edited.pool.fetchval(
            "SELECT count(*) FROM audit_events e JOIN api_keys k ON k.id = e.key_id"
            " WHERE k.name = 'reader' AND e.route = $1 AND e.status = 304",
            route,
        )
        return bool(count)

    await _eventually(audited, "the kept answer's audit event")

    # Another query of the same path is its own answer; a bad parameter still gets its 422.
    assert (await _get(trusting, f"{path}?limit=1", edited.reader)).status_code == 200
    assert (await _get(trusting, f"{path}?limit=0", edited.reader)).status_code == 422
    # A key without roster:read (trusted once looked up), and one the replica never saw,
    # are the route's to refuse.
    async with edited.pool.acquire() as connection:
        sync_only = await create_key(connection, name="sync only", scopes=[Scope.SYNC_WRITE])
    for _ in range(2):
        assert (await _get(trusting, path, sync_only.secret)).status_code == 403
    assert (await _get(trusting, path, "rk_never_issued")).status_code == 401

    # Locked out after bad keys from this address (the unknown one above was the first),
    # even with a kept answer for a good key.
    for attempt in range(2):
        assert (await _get(trusting, path, f"rk_guess{attempt}")).status_code == 401
    locked = await _get(trusting, path, edited.reader)
    assert locked.status_code == 429 and "this address" in locked.json()["detail"]
