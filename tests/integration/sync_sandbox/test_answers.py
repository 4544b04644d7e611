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

from app.api.answers import CHANNEL
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
        " WHERE application_name = 'roster-api-listener'"
    )
    assert listeners == 2  # one per replica

    async def read_from_postgres() -> bool:
        before = _answers("read")
        await _get(one, path, edited.reader)
        return _answers("read") == before + 1

    await _eventually(read_from_postgres, "the listener's loss")
    # Back once it listens again (a second later), and kept again.
    await _kept(one, path, edited.reader)
