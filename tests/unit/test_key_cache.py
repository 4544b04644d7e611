"""The API's cache of looked-up keys: bounded trust, negative answers cached too."""

from __future__ import annotations

import asyncio
import uuid

from app.api.auth import KeyCache
from app.api.keys import KeyGrant

GRANT = KeyGrant(uuid.uuid4(), "app", frozenset({"roster:read"}), None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_looked_up_again_once_its_entry_expires() -> None:
    clock = Clock()
    cache = KeyCache(5.0, clock=clock)
    answers: list[KeyGrant | None] = [GRANT, None]
    lookups: list[str] = []

    async def load(secret: str) -> KeyGrant | None:
        lookups.append(secret)
        return answers[len(lookups) - 1]

    assert await cache.get("rk_a", load) is GRANT
    clock.now = 4.9
    assert await cache.get("rk_a", load) is GRANT
    assert lookups == ["rk_a"]
    clock.now = 5.1  # revoked meanwhile: the next lookup sees it
    assert await cache.get("rk_a", load) is None
    assert lookups == ["rk_a", "rk_a"]


async def test_unknown_keys_are_cached_and_a_zero_ttl_disables_caching() -> None:
    lookups: list[str] = []

    async def load(secret: str) -> KeyGrant | None:
        lookups.append(secret)
        return None

    cache = KeyCache(5.0, clock=Clock())
    assert await cache.get("rk_guess", load) is None
    assert await cache.get("rk_guess", load) is None
    assert lookups == ["rk_guess"]

    uncached = KeyCache(0.0)
    await uncached.get("rk_x", load)
    await uncached.get("rk_x", load)
    assert lookups == ["rk_guess", "rk_x", "rk_x"]


async def test_requests_that_miss_together_share_one_lookup() -> None:
    release = asyncio.Event()
    lookups: list[str] = []

    async def load(secret: str) -> KeyGrant | None:
        lookups.append(secret)
        await release.wait()
        return GRANT

    cache = KeyCache(5.0, clock=Clock())
    waiting = [asyncio.create_task(cache.get("rk_a", load)) for _ in range(20)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # one caller giving up does not fail the others
    release.set()
    results = await asyncio.gather(*waiting[1:])
    assert results == [GRANT] * 19
    assert lookups == ["rk_a"]
