"""Collection paging, limits, versions and single-record reads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.clever import (
    CleverClient,
    CleverRecord,
    CleverRequestError,
    CleverTransientError,
    NotFound,
    Page,
    Section,
    User,
)
from app.settings import CleverApiVersion, Settings
from tests.integration.clever_respx.conftest import BASE_URL, TOKEN, make_client, ok, page
from tests.unit.clever.fakes import FakeClock


def student(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": user_id, "district": "d1", "roles": {"student": {"grade": "3"}}, **fields}


async def collect(pages: Any) -> list[Page[Any]]:
    return [item async for item in pages]


async def test_follows_next_links_and_stops_at_an_empty_page(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get("/v3.0/users").mock(
        side_effect=[
            ok(
                page(student("u1"), student("u2"), next_uri="/v3.0/users?limit=2&starting_after=u2")
            ),
            ok(
                page(student("u3"), student("u4"), next_uri="/v3.0/users?limit=2&starting_after=u4")
            ),
            ok(page(student("u5"), next_uri="/v3.0/users?limit=2&starting_after=u5")),
            ok(page(next_uri="/v3.0/users?limit=2&starting_after=u5x")),
        ]
    )

    pages = await collect(client.iter_pages("users", role="student"))

    assert [[user.id for user in p.records] for p in pages] == [["u1", "u2"], ["u3", "u4"], ["u5"]]
    assert [str(call.request.url) for call in route.calls] == [
        f"{BASE_URL}/v3.0/users?limit=2&role=student",
        f"{BASE_URL}/v3.0/users?limit=2&starting_after=u2",
        f"{BASE_URL}/v3.0/users?limit=2&starting_after=u4",
        f"{BASE_URL}/v3.0/users?limit=2&starting_after=u5",
    ]
    assert client.request_count == 4
    assert pages[0].next_path == "/v3.0/users?limit=2&starting_after=u2"
    assert pages[0].path == "/v3.0/users?limit=2&role=student"
    assert pages[1].last_id == "u4"
    assert all(isinstance(user, User) for p in pages for user in p)


async def test_stops_when_there_is_no_next_link(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get("/v3.0/sections").mock(
        return_value=ok(page({"id": "s1", "students": ["u1"]}))
    )

    pages = await collect(client.iter_pages(Section))

    assert len(pages) == 1
    assert pages[0].entry_count == 1
    assert pages[0].records[0].students == ["u1"]
    assert route.call_count == 1


async def test_an_empty_collection_yields_no_page(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/courses").mock(return_value=ok(page()))

    assert await collect(client.iter_pages("courses")) == []


async def test_records_keep_the_raw_json_and_unknown_fields(
    router: respx.MockRouter, client: CleverClient
) -> None:
    raw = student("u1", new_field={"nested": [1, 2]}, name={"first": "Zoë", "last": "Ng"})
    router.get("/v3.0/users").mock(return_value=ok(page(raw)))

    [only] = await collect(client.iter_pages(User))
    user = only.records[0]

    assert user.raw == raw
    assert user.model_extra == {"new_field": {"nested": [1, 2]}}
    assert user.name is not None and user.name.first == "Zoë"


async def test_unreadable_entries_are_reported_not_raised(
    router: respx.MockRouter, client: CleverClient
) -> None:
    body = page(student("u1"))
    body["data"] += [{"data": {"name": {"first": "no id"}}}, {"uri": "/v3.0/users/x"}, "junk"]
    router.get("/v3.0/users").mock(return_value=ok(body))

    [only] = await collect(client.iter_pages(User))

    assert [user.id for user in only.records] == ["u1"]
    assert only.entry_count == 4
    assert only.raw_records == [student("u1"), {"name": {"first": "no id"}}]
    assert only.last_id == "u1"
    assert [entry.reason for entry in only.invalid] == [
        "id: missing",
        "entry has no data object",
        "entry has no data object",
    ]
    assert "no id" not in only.invalid[0].reason


@pytest.mark.parametrize("version", ["v3.0", "v3.1"])
async def test_requests_go_to_the_configured_version(
    router: respx.MockRouter, clock: FakeClock, version: str
) -> None:
    first = ok(page({"id": "t1"}, next_uri=f"/{version}/terms?limit=2&starting_after=t1"))
    route = router.get(f"/{version}/terms").mock(side_effect=[first, ok(page())])
    single = router.get(f"/{version}/terms/t1").mock(return_value=ok({"data": {"id": "t1"}}))

    async with make_client(clock, api_version=version) as clever:
        await collect(clever.iter_pages("terms"))
        await clever.get("terms", "t1")

    assert route.call_count == 2
    assert all(call.request.url.path == f"/{version}/terms" for call in route.calls)
    assert single.call_count == 1


async def test_the_token_is_sent_as_a_bearer_header(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get("/v3.0/districts").mock(return_value=ok(page({"id": "d1"})))

    await collect(client.iter_pages("districts"))

    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert route.calls.last.request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("limit", [0, -1, 10_001, True, 2.5, "100"])
async def test_invalid_limits_are_refused_before_any_request(
    router: respx.MockRouter, client: CleverClient, limit: Any
) -> None:
    with pytest.raises(ValueError, match="limit"):
        await collect(client.iter_pages("users", limit=limit))
    with pytest.raises(ValueError, match="limit"):
        await collect(client.iter_events(limit=limit))
    assert client.request_count == 0


@pytest.mark.parametrize("limit", [1, 10_000])
async def test_limits_up_to_ten_thousand_are_sent(
    router: respx.MockRouter, client: CleverClient, limit: int
) -> None:
    route = router.get("/v3.0/schools").mock(return_value=ok(page()))

    await collect(client.iter_pages("schools", limit=limit))

    assert route.calls.last.request.url.params["limit"] == str(limit)


async def test_from_settings_reads_the_clever_settings(router: respx.MockRouter) -> None:
    settings = Settings(
        _env_file=None,
        clever_api_base_url=f"{BASE_URL}/",
        clever_api_version=CleverApiVersion.V3_1,
        clever_page_size=250,
        clever_timeout_seconds=12.0,
        clever_max_retries=0,
        clever_requests_per_minute=100_000,
    )
    route = router.get("/v3.1/schools").mock(return_value=httpx.Response(503))

    async with CleverClient.from_settings(settings, SecretStr(TOKEN), district_id="d9") as clever:
        assert repr(clever) == (
            f"CleverClient(base_url='{BASE_URL}', api_version='v3.1', district_id='d9')"
        )
        with pytest.raises(CleverTransientError):
            await collect(clever.iter_pages("schools"))

    request = route.calls.last.request
    assert request.url.params["limit"] == "250"
    assert request.extensions["timeout"]["read"] == 12.0
    assert route.call_count == 1


def test_page_size_is_validated_at_construction(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="limit"):
        make_client(clock, page_size=10_001)
    with pytest.raises(ValueError, match="api_version"):
        make_client(clock, api_version="v2.1")


@pytest.mark.parametrize(
    ("collection", "role"),
    [("users", "parent"), ("sections", "student"), ("pets", None)],
)
async def test_unknown_roles_and_collections_are_refused(
    router: respx.MockRouter, client: CleverClient, collection: str, role: str | None
) -> None:
    with pytest.raises(ValueError):
        await collect(client.iter_pages(collection, role=role))
    with pytest.raises(ValueError):
        await client.get(CleverRecord, "x")
    assert client.request_count == 0


async def test_every_role_filter_is_accepted(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get("/v3.0/users").mock(return_value=ok(page()))
    roles = ["student", "teacher", "staff", "district_admin", "contact"]

    for role in roles:
        await collect(client.iter_pages(User, role=role, starting_after="u0"))

    assert [call.request.url.params["role"] for call in route.calls] == roles
    assert route.calls.last.request.url.params["starting_after"] == "u0"


async def test_a_next_link_to_another_host_is_not_followed(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/users").mock(
        return_value=ok(page(student("u1"), next_uri="https://evil.test/v3.0/users?x=1"))
    )

    with pytest.raises(CleverRequestError, match="another host"):
        await collect(client.iter_pages("users"))
    assert client.request_count == 1


async def test_an_absolute_next_link_on_the_same_host_is_followed(
    router: respx.MockRouter, client: CleverClient
) -> None:
    route = router.get("/v3.0/users").mock(
        side_effect=[
            ok(page(student("u1"), next_uri=f"{BASE_URL}/v3.0/users?starting_after=u1")),
            ok(page()),
        ]
    )

    await collect(client.iter_pages("users"))

    assert route.call_count == 2


async def test_a_page_linking_to_itself_fails_instead_of_looping(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/users").mock(
        return_value=ok(page(student("u1"), next_uri="/v3.0/users?limit=2"))
    )

    with pytest.raises(CleverRequestError, match="already read"):
        await collect(client.iter_pages("users"))
    assert client.request_count == 1


@pytest.mark.parametrize(
    "body",
    [
        {"links": []},
        {"data": {"id": "x"}},
        {"data": [{"data": {"id": "u1"}}], "links": "next"},
        [1, 2],
    ],
)
async def test_a_malformed_envelope_is_a_permanent_error(
    router: respx.MockRouter, client: CleverClient, body: Any
) -> None:
    router.get("/v3.0/users").mock(return_value=httpx.Response(200, json=body))

    with pytest.raises(CleverRequestError):
        await collect(client.iter_pages("users"))
    assert client.request_count == 1


async def test_get_returns_the_record(router: respx.MockRouter, client: CleverClient) -> None:
    router.get("/v3.0/sections/s%2F1").mock(
        return_value=ok({"data": {"id": "s/1", "name": "Math"}, "links": []})
    )

    section = await client.get(Section, "s/1")

    assert isinstance(section, Section)
    assert section.name == "Math"
    assert section.raw == {"id": "s/1", "name": "Math"}


async def test_get_answers_not_found_on_404(router: respx.MockRouter, client: CleverClient) -> None:
    route = router.get("/v3.0/users/gone").mock(
        return_value=httpx.Response(404, json={"message": "Resource not found"})
    )

    result = await client.get("users", "gone")

    assert result == NotFound(collection="users", id="gone")
    assert route.call_count == 1


async def test_get_of_a_record_without_id_is_a_permanent_error(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/users/u1").mock(return_value=ok({"data": {"name": {"first": "A"}}}))
    router.get("/v3.0/users/u2").mock(return_value=ok({"data": ["u2"]}))

    with pytest.raises(CleverRequestError, match="usable id"):
        await client.get("users", "u1")
    with pytest.raises(CleverRequestError, match="data object"):
        await client.get("users", "u2")


async def test_raw_records_are_served_without_parsing(
    router: respx.MockRouter, client: CleverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    router.get("/v3.0/users").mock(return_value=ok(page(student("u1"), student("u2"))))
    [only] = await collect(client.iter_pages(User))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(User, "model_validate", refuse)
    assert only.raw_records == [student("u1"), student("u2")]
    assert only.last_id == "u2"
    assert repr(only) == "Page(User, entries=2, path='/v3.0/users?limit=2')"
    monkeypatch.undo()

    assert [user.id for user in only] == ["u1", "u2"]
    assert only.records[0] is only.records[0]
