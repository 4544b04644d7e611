"""Events: paging oldest first, the newest event id, and an unusable cursor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from app.clever import (
    CleverClient,
    CleverEventsUnavailable,
    CleverRequestError,
    Event,
    Page,
    Section,
    User,
)
from tests.integration.clever_respx.conftest import BASE_URL, error, make_client, ok, page
from tests.unit.clever.fakes import FakeClock

EVENTS = "/v3.0/events"


def event(event_id: str, event_type: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    data.update(extra.pop("data_extra", {}))
    created = "2024-01-02T03:04:05.678Z"
    return {"id": event_id, "type": event_type, "created": created, "data": data, **extra}


async def collect(client: CleverClient, **options: Any) -> list[Page[Event]]:
    return [p async for p in client.iter_events(**options)]


async def test_events_are_read_oldest_first_after_the_cursor(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get(EVENTS).mock(
        side_effect=[
            ok(
                page(
                    event("e2", "users.created", {"id": "u1"}),
                    event("e3", "sections.deleted", {"id": "s1"}),
                    next_uri="/v3.0/events?limit=2&starting_after=e3",
                )
            ),
            ok(page(event("e4", "users.updated", {"id": "u1"}), next_uri="/v3.0/events?x=e4")),
            ok(page()),
        ]
    )

    pages = await collect(client, starting_after="e1")

    assert [[e.id for e in p] for p in pages] == [["e2", "e3"], ["e4"]]
    assert [str(call.request.url) for call in route.calls] == [
        f"{BASE_URL}/v3.0/events?limit=2&starting_after=e1",
        f"{BASE_URL}/v3.0/events?limit=2&starting_after=e3",
        f"{BASE_URL}/v3.0/events?x=e4",
    ]
    first = pages[0].records[0]
    assert (first.record_type, first.action) == ("users", "created")
    assert isinstance(first.record(), User)
    deleted = pages[0].records[1]
    assert (deleted.record_type, deleted.action) == ("sections", "deleted")
    assert isinstance(deleted.record(), Section)
    assert pages[1].last_id == "e4"


async def test_record_type_filters_are_repeated_query_parameters(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get(EVENTS).mock(return_value=ok(page()))

    await collect(client, starting_after="e1", record_types=["users", "sections"], limit=500)

    params = route.calls.last.request.url.params
    assert params.get_list("record_type") == ["users", "sections"]
    assert params["limit"] == "500"


async def test_previous_attributes_are_read_from_either_place(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get(EVENTS).mock(
        return_value=ok(
            page(
                event(
                    "e1",
                    "users.updated",
                    {"id": "u1", "email": "new@x.org"},
                    data_extra={"previous_attributes": {"email": "old@x.org"}},
                ),
                event(
                    "e2",
                    "sections.updated",
                    {"id": "s1", "name": "Math 2"},
                    previous_attributes={"name": "Math 1"},
                ),
                event("e3", "terms.updated", {"id": "t1"}),
            )
        )
    )

    [only] = await collect(client, starting_after="e0")
    inside, top_level, neither = only.records

    assert inside.data is not None
    assert inside.data.previous_attributes == {"email": "old@x.org"}
    assert inside.previous_attributes_merged == {"email": "old@x.org"}
    assert top_level.previous_attributes == {"name": "Math 1"}
    assert top_level.previous_attributes_merged == {"name": "Math 1"}
    assert neither.previous_attributes_merged == {}
    assert inside.record_raw == {"id": "u1", "email": "new@x.org"}


async def test_latest_event_id(router: respx.MockRouter, client: CleverClient) -> None:
    route = router.get(EVENTS).mock(
        return_value=ok(page(event("e99", "users.updated", {"id": "u1"})))
    )

    assert await client.latest_event_id() == "e99"
    assert str(route.calls.last.request.url) == f"{BASE_URL}/v3.0/events?ending_before=last&limit=1"


async def test_latest_event_id_is_none_without_events(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get(EVENTS).mock(return_value=ok(page()))

    assert await client.latest_event_id() is None


async def test_latest_event_without_id_is_an_error(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get(EVENTS).mock(return_value=ok(page({"type": "users.created"})))

    with pytest.raises(CleverRequestError, match="newest event"):
        await client.latest_event_id()


async def test_an_unknown_cursor_means_events_are_unavailable(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get(EVENTS).mock(
        return_value=httpx.Response(404, json={"message": "starting_after event not found"})
    )

    with pytest.raises(CleverEventsUnavailable) as caught:
        await collect(client, starting_after="expired")

    assert caught.value.status == 404
    assert caught.value.path == "/v3.0/events?limit=2&starting_after=expired"
    assert "starting_after event not found" in str(caught.value)
    assert route.call_count == 1


@pytest.mark.parametrize("call", ["iter", "latest"])
async def test_events_not_enabled_means_events_are_unavailable(
    router: respx.MockRouter, client: CleverClient, call: str
) -> None:
    route = router.get(EVENTS).mock(
        return_value=error(403, "events are not enabled for this district")
    )

    with pytest.raises(CleverEventsUnavailable, match="events are not enabled") as caught:
        if call == "iter":
            await collect(client, starting_after="e1")
        else:
            await client.latest_event_id()

    assert caught.value.status == 403
    assert route.call_count == 1


async def test_a_404_elsewhere_is_not_an_events_error(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/users").mock(return_value=error(404))

    with pytest.raises(CleverRequestError):
        [p async for p in client.iter_pages("users")]


async def test_events_use_the_v31_path(router: respx.MockRouter, clock: FakeClock) -> None:
    route = router.get("/v3.1/events").mock(return_value=ok(page()))

    async with make_client(clock, api_version="v3.1") as clever:
        assert await clever.latest_event_id() is None
        assert await collect(clever, starting_after="e1") == []

    assert route.call_count == 2


async def test_events_are_retried_like_any_request(
    router: respx.MockRouter, client: CleverClient, clock: FakeClock
) -> None:
    router.get(EVENTS).mock(
        side_effect=[error(502), ok(page(event("e7", "courses.created", {"id": "c1"})))]
    )

    assert await client.latest_event_id() == "e7"
    assert clock.waits() == [0.5]
