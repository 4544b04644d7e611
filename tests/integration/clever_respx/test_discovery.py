"""District discovery: `/districts` per token and the app's `/oauth/tokens` listing."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.clever import (
    CleverAuthError,
    CleverClient,
    CleverOAuthClient,
    District,
    districts,
    map_district_tokens,
)
from app.settings import Settings
from tests.integration.clever_respx.conftest import error, make_client, ok, page
from tests.unit.clever.fakes import FakeClock, MaxJitter

OAUTH_URL = "https://clever.oauth.test"
CLIENT_ID = "app-client-id"
CLIENT_SECRET = "app-client-secret-b4c2"


def token_entry(district_id: str, token: str, created: str = "2024-01-01T00:00:00Z") -> Any:
    return {
        "id": f"tokid-{token}",
        "created": created,
        "owner": {"type": "district", "id": district_id},
        "access_token": token,
        "scopes": ["read:district_admins", "read:users"],
    }


@pytest.fixture
def oauth_router() -> Any:
    with respx.mock(base_url=OAUTH_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def oauth(
    oauth_router: respx.MockRouter, clock: FakeClock
) -> AsyncIterator[CleverOAuthClient]:
    async with CleverOAuthClient(
        CLIENT_ID,
        CLIENT_SECRET,
        oauth_base_url=OAUTH_URL,
        max_retries=2,
        clock=clock,
        sleep=clock.sleep,
        rng=MaxJitter(),
    ) as client:
        yield client


async def test_districts_lists_what_the_token_sees(
    router: respx.MockRouter, client: CleverClient
) -> None:
    router.get("/v3.0/districts").mock(
        return_value=ok(page({"id": "d1", "name": "Springfield USD", "state": "running"}))
    )

    found = await districts(client)

    assert [(d.id, d.name) for d in found] == [("d1", "Springfield USD")]
    assert isinstance(found[0], District)


async def test_map_district_tokens_asks_each_token(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    route = router.get("/v3.0/districts")
    route.side_effect = lambda request: ok(
        page({"id": "d-a"} if request.headers["Authorization"] == "Bearer tok-a" else {"id": "d-b"})
    )
    tokens = [SecretStr("tok-a"), SecretStr("tok-b")]

    mapping = await map_district_tokens(tokens, lambda token: make_client(clock, token=token))

    assert {district: token.get_secret_value() for district, token in mapping.items()} == {
        "d-a": "tok-a",
        "d-b": "tok-b",
    }
    assert route.call_count == 2


async def test_district_tokens_use_basic_auth_and_follow_pages(
    oauth_router: respx.MockRouter, oauth: CleverOAuthClient
) -> None:
    route = oauth_router.get("/oauth/tokens").mock(
        side_effect=[
            ok(
                {
                    "data": [token_entry("d1", "tok-1"), token_entry("d2", "tok-2")],
                    "links": [
                        {
                            "rel": "next",
                            "uri": "/oauth/tokens?owner_type=district&starting_after=t2",
                        }
                    ],
                }
            ),
            ok({"data": [token_entry("d3", "tok-3")], "links": []}),
        ]
    )

    tokens = await oauth.district_tokens()

    assert {d: t.get_secret_value() for d, t in tokens.items()} == {
        "d1": "tok-1",
        "d2": "tok-2",
        "d3": "tok-3",
    }
    assert all(isinstance(t, SecretStr) for t in tokens.values())
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert [call.request.headers["Authorization"] for call in route.calls] == [expected] * 2
    assert [str(call.request.url) for call in route.calls] == [
        f"{OAUTH_URL}/oauth/tokens?owner_type=district",
        f"{OAUTH_URL}/oauth/tokens?owner_type=district&starting_after=t2",
    ]
    assert oauth.request_count == 2


async def test_district_tokens_skip_other_owners_and_keep_the_newest(
    oauth_router: respx.MockRouter, oauth: CleverOAuthClient
) -> None:
    oauth_router.get("/oauth/tokens").mock(
        return_value=ok(
            {
                "data": [
                    token_entry("d1", "old", created="2023-05-01T00:00:00Z"),
                    token_entry("d1", "new", created="2024-05-01T00:00:00Z"),
                    token_entry("d1", "older", created="2022-05-01T00:00:00Z"),
                    {"owner": {"type": "user", "id": "u1"}, "access_token": "user-token"},
                    {"owner": {"type": "district", "id": "d2"}},
                    "junk",
                ]
            }
        )
    )

    tokens = await oauth.district_tokens()

    assert {d: t.get_secret_value() for d, t in tokens.items()} == {"d1": "new"}


async def test_district_tokens_stop_at_an_empty_page(
    oauth_router: respx.MockRouter, oauth: CleverOAuthClient
) -> None:
    route = oauth_router.get("/oauth/tokens").mock(
        return_value=ok({"data": [], "links": [{"rel": "next", "uri": "/oauth/tokens?p=2"}]})
    )

    assert await oauth.district_tokens() == {}
    assert route.call_count == 1


async def test_rejected_client_credentials_raise_an_auth_error(
    oauth_router: respx.MockRouter, oauth: CleverOAuthClient
) -> None:
    oauth_router.get("/oauth/tokens").mock(return_value=error(401, "invalid_client"))

    with pytest.raises(CleverAuthError, match="client id/secret rejected") as caught:
        await oauth.district_tokens()

    assert CLIENT_SECRET not in str(caught.value)
    assert CLIENT_SECRET not in repr(oauth)


async def test_district_tokens_retry_server_errors(
    oauth_router: respx.MockRouter, oauth: CleverOAuthClient, clock: FakeClock
) -> None:
    oauth_router.get("/oauth/tokens").mock(
        side_effect=[httpx.ConnectError, ok({"data": [token_entry("d1", "tok-1")]})]
    )

    assert list(await oauth.district_tokens()) == ["d1"]
    assert clock.waits() == [0.5]


def test_oauth_client_from_settings_needs_credentials() -> None:
    with pytest.raises(ValueError, match="CLEVER_CLIENT_ID"):
        CleverOAuthClient.from_settings(
            Settings(_env_file=None, clever_client_id=None, clever_client_secret=None)
        )
    configured = Settings(
        _env_file=None,
        clever_client_id=CLIENT_ID,
        clever_client_secret=SecretStr(CLIENT_SECRET),
        clever_oauth_base_url=OAUTH_URL,
    )
    assert repr(CleverOAuthClient.from_settings(configured)) == (
        f"CleverOAuthClient(oauth_base_url='{OAUTH_URL}', client_id='{CLIENT_ID}')"
    )
