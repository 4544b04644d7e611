"""Outbound webhooks against a receiver on loopback: signed deliveries of each run's
changes, retried after 500s and timeouts, deduplicated by delivery id, paused after
repeated failures, and never in a sync's way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.history import webhooks
from app.history.webhooks import WebhookSettings
from app.sync.runs import RunMode
from tests.integration.api.sync_support import assert_problem, bearer
from tests.integration.sync_sandbox.local_support import Edited, first_record
from tests.integration.sync_sandbox.support import wait_for
from tests.support.receiver import SECRET, Receiver
from tests.support.server import serve_in_thread

FAST = WebhookSettings(timeout_seconds=0.5, retry_base_seconds=0.01, retry_max_seconds=0.02)

Json = dict[str, Any]


@pytest.fixture
async def receiver(edited: Edited) -> AsyncIterator[Receiver]:
    """A receiver; the test's webhooks go with it."""
    receiver = Receiver()
    with serve_in_thread(receiver.app()) as url:
        receiver.url = url
        try:
            yield receiver
        finally:
            receiver.release.set()
            await edited.pool.execute("TRUNCATE webhooks, webhook_deliveries")


async def _subscribe(edited: Edited, url: str, **extra: Any) -> Json:
    response = await edited.api.post(
        "/v1/webhooks",
        json={"url": url, "secret": SECRET, **extra},
        headers=bearer(edited.admin),
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def _dispatch(edited: Edited, settings: WebhookSettings = FAST) -> tuple[int, int]:
    return await webhooks.dispatch(edited.pool, settings)


async def _arrived(receiver: Receiver) -> bool | None:
    return True if receiver.attempts else None


def _changed(receiver: Receiver) -> list[tuple[str, str, str]]:
    return sorted(
        (change["entity"], change["id"], change["op"])
        for delivery in receiver.kept.values()
        for change in delivery["changes"] or []
    )


async def test_each_runs_changes_arrive_signed_once_per_delivery(
    edited: Edited, receiver: Receiver
) -> None:
    hook = await _subscribe(edited, f"{receiver.url}/hook", entities=["users"])
    assert hook["cursor"] and not hook["paused"] and "secret" not in hook
    student = first_record(edited.district, "users", "student")["id"]
    edited.district.update(student, {"name": {"first": "Hooked"}})
    run_id = await edited.run(RunMode.FULL)
    assert await _dispatch(edited) == (1, 1)
    [delivery] = receiver.kept.values()
    assert [(c["entity"], c["id"], c["op"], c["fields"]) for c in delivery["changes"]] == [
        ("users", student, "updated", ["name_first"])
    ]
    assert delivery["changes"][0]["run_id"] == run_id and delivery["count"] == 1
    assert receiver.bad_signatures == 0
    # Nothing new: nothing sent. A retry sends the same delivery id again: kept once.
    assert await _dispatch(edited) == (0, 0)
    listed = await edited.api.get(
        f"/v1/webhooks/{hook['id']}/deliveries", headers=bearer(edited.admin)
    )
    [logged] = listed.json()["data"]
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == (
        "succeeded",
        1,
        204,
    )
    retried = await edited.api.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{logged['id']}/retry",
        headers=bearer(edited.admin),
    )
    assert retried.json()["status"] == "pending"
    assert await _dispatch(edited) == (0, 1)
    assert receiver.attempts == [logged["id"], logged["id"]] and len(receiver.kept) == 1
    # A change of another kind is not for this webhook.
    section = first_record(edited.district, "sections")
    edited.district.update(section["id"], {"name": "Not a user"})
    await edited.run(RunMode.FULL)
    assert await _dispatch(edited) == (0, 0)


async def test_failures_are_retried_with_backoff_then_the_webhook_pauses(
    edited: Edited, receiver: Receiver
) -> None:
    hook = await _subscribe(edited, f"{receiver.url}/hook")
    student = first_record(edited.district, "users", "student")["id"]
    receiver.script = [500, "slow"]
    edited.district.update(student, {"name": {"first": "Retried"}})
    await edited.run(RunMode.FULL)
    assert await _dispatch(edited) == (1, 0)  # 500
    await asyncio.sleep(0.05)
    assert await _dispatch(edited) == (0, 0)  # no answer within the timeout
    await asyncio.sleep(0.05)
    assert await _dispatch(edited) == (0, 1)
    [delivery] = (
        await edited.api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=bearer(edited.admin))
    ).json()["data"]
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
    assert len(set(receiver.attempts)) == 1 and len(receiver.attempts) == 3

    # An endpoint that keeps failing: paused after the limit, then nothing is sent.
    pausing = WebhookSettings(
        timeout_seconds=0.5, retry_base_seconds=0.01, retry_max_seconds=0.02, pause_after=3
    )
    receiver.script = [500] * 10
    edited.district.update(student, {"name": {"first": "Failing"}})
    await edited.run(RunMode.FULL)
    for _ in range(5):
        await _dispatch(edited, pausing)
        await asyncio.sleep(0.05)
    shown = (
        await edited.api.get(f"/v1/webhooks/{hook['id']}", headers=bearer(edited.admin))
    ).json()
    assert shown["paused"] and shown["failures"] == 3
    assert len(receiver.attempts) == 3 + 3
    # Resumed, it delivers what waited.
    receiver.script = []
    resumed = await edited.api.post(
        f"/v1/webhooks/{hook['id']}/resume", headers=bearer(edited.admin)
    )
    assert not resumed.json()["paused"]
    assert await _dispatch(edited, pausing) == (0, 1)
    assert ("users", student, "updated") in _changed(receiver)


async def test_redirects_are_not_followed(edited: Edited, receiver: Receiver) -> None:
    hook = await _subscribe(edited, f"{receiver.url}/moved")
    student = first_record(edited.district, "users", "student")["id"]
    edited.district.update(student, {"name": {"first": "Moved"}})
    await edited.run(RunMode.FULL)
    assert await _dispatch(edited) == (1, 0)
    [delivery] = (
        await edited.api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=bearer(edited.admin))
    ).json()["data"]
    assert delivery["last_status_code"] == 307
    assert delivery["last_error"] == "redirects are not followed"
    assert receiver.kept == {}


async def test_a_slow_receiver_does_not_hold_up_a_sync(edited: Edited, receiver: Receiver) -> None:
    await _subscribe(edited, f"{receiver.url}/hook")
    student = first_record(edited.district, "users", "student")["id"]
    receiver.script = ["wait"]
    edited.district.update(student, {"name": {"first": "First"}})
    await edited.run(RunMode.FULL)
    slow = WebhookSettings(timeout_seconds=30)
    sending = asyncio.create_task(webhooks.dispatch(edited.pool, slow))
    await wait_for(lambda: _arrived(receiver), what="the delivery at the receiver")
    # The receiver holds the delivery; syncs go on and commit meanwhile.
    edited.district.update(student, {"name": {"first": "Second"}})
    await edited.run(RunMode.FULL)
    await edited.run(RunMode.INCREMENTAL)
    assert not sending.done()
    receiver.release.set()
    assert await sending == (1, 1)
    assert await _dispatch(edited) == (1, 1)
    firsts = [
        change
        for delivery in receiver.kept.values()
        for change in delivery["changes"]
        if change["id"] == student
    ]
    assert len(firsts) == 2


async def test_large_batches_point_at_the_feed(edited: Edited, receiver: Receiver) -> None:
    await _subscribe(edited, f"{receiver.url}/hook")
    for user in list(edited.district.iter_records("users"))[:5]:
        edited.district.update(user["id"], {"name": {"last": "Batched"}})
    await edited.run(RunMode.FULL)
    small = WebhookSettings(max_changes=2, max_body_bytes=100)
    made, sent = await webhooks.dispatch(edited.pool, small)
    assert made == sent >= 3
    bodies = sorted(receiver.kept.values(), key=lambda body: body["from_cursor"])
    assert all(body["changes"] is None and body["count"] <= 2 for body in bodies)
    # The cursors chain: each delivery starts where the one before ended.
    starts = {body["from_cursor"] for body in bodies}
    ends = {body["to_cursor"] for body in bodies}
    assert len(starts - ends) == 1
    feed = await edited.api.get(
        "/v1/changes",
        params={"cursor": bodies[0]["from_cursor"], "limit": 2},
        headers=bearer(edited.reader),
    )
    assert len(feed.json()["data"]) == 2


async def test_webhooks_need_admin_and_valid_urls(edited: Edited, receiver: Receiver) -> None:
    for url in ("ftp://example.test/hook", "file:///etc/passwd", "not a url"):
        response = await edited.api.post(
            "/v1/webhooks", json={"url": url, "secret": SECRET}, headers=bearer(edited.admin)
        )
        assert_problem(response, 422)
    # A secret Postgres text cannot hold is refused as a bad parameter, not a server error.
    response = await edited.api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "secret": SECRET + "\x00"},
        headers=bearer(edited.admin),
    )
    assert_problem(response, 422)
    assert response.json()["errors"][0]["loc"] == ["body", "secret"]
    response = await edited.api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "secret": SECRET},
        headers=bearer(edited.writer),
    )
    assert_problem(response, 403)
    hook = await _subscribe(edited, "http://127.0.0.1:9/hook")
    deleted = await edited.api.delete(f"/v1/webhooks/{hook['id']}", headers=bearer(edited.admin))
    assert deleted.status_code == 204
    gone = await edited.api.get(f"/v1/webhooks/{hook['id']}", headers=bearer(edited.admin))
    assert_problem(gone, 404)
