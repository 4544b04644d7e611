"""The district token never shows in logs, errors or reprs."""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable

import httpx
import pytest
import respx

from app.clever import CleverClient, CleverError
from tests.integration.clever_respx.conftest import TOKEN, error, ok, page

Scenario = Callable[[CleverClient], Awaitable[object]]


async def read_users(client: CleverClient) -> object:
    return [p async for p in client.iter_pages("users")]


async def read_events(client: CleverClient) -> object:
    return [p async for p in client.iter_events(starting_after="e1")]


async def read_user(client: CleverClient) -> object:
    return await client.get("users", "u1")


@pytest.mark.parametrize(
    ("responses", "scenario"),
    [
        ([error(401, "bad token")], read_users),
        ([error(400, "bad request")], read_users),
        ([error(413, "limit")], read_users),
        ([error(503)] * 4, read_users),
        ([httpx.ReadTimeout] * 4, read_users),
        ([httpx.Response(200, content=b"{")] * 4, read_user),
        ([error(429, **{"Retry-After": "1"})] * 4, read_user),
        ([error(404, "cursor expired")], read_events),
        ([error(403, "events are not enabled")], read_events),
    ],
)
async def test_the_token_never_appears_in_logs_errors_or_reprs(
    router: respx.MockRouter,
    client: CleverClient,
    caplog: pytest.LogCaptureFixture,
    responses: list[httpx.Response | type[Exception]],
    scenario: Scenario,
) -> None:
    caplog.set_level(logging.DEBUG)
    router.get(url__regex=r"/v3\.0/(users|events).*").mock(side_effect=responses)

    with pytest.raises(CleverError) as caught:
        await scenario(client)

    route = router.routes[0]
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    exc = caught.value
    exposed = [
        str(exc),
        repr(exc),
        repr(exc.__cause__),
        "".join(traceback.format_exception(exc)),
        repr(pickle.loads(pickle.dumps(exc)).__dict__),
        repr(client),
        repr(vars(client)),
        caplog.text,
        *(repr(record.__dict__) for record in caplog.records),
    ]
    assert all(TOKEN not in text for text in exposed)


async def test_successful_reads_do_not_log_the_token_or_record_contents(
    router: respx.MockRouter, client: CleverClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    router.get("/v3.0/users").mock(
        side_effect=[
            error(502),
            ok(page({"id": "u1", "email": "pupil@example.org", "name": {"first": "Ada"}})),
        ]
    )

    await read_users(client)

    assert TOKEN not in caplog.text
    assert "pupil@example.org" not in caplog.text
    assert "Ada" not in caplog.text
