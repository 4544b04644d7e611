"""Which district each token serves.

Two sources of district tokens:

* configured tokens: ask `/districts` with each one (`districts`, `map_district_tokens`);
* the app's client id/secret: list the tokens Clever issued to the app for districts
  (`CleverOAuthClient.district_tokens`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
from pydantic import SecretStr

from app.clever.client import CleverClient
from app.clever.errors import CleverAuthError
from app.clever.models import District
from app.clever.pacing import Clock, Sleep
from app.clever.requester import Requester, iter_json_pages

logger = logging.getLogger("app.clever")


async def districts(client: CleverClient) -> list[District]:
    """Every district the client's token can see; a district token sees exactly one."""
    found: list[District] = []
    async for page in client.iter_pages(District):
        found.extend(page.records)
    return found


async def map_district_tokens(
    tokens: Iterable[SecretStr],
    open_client: Callable[[SecretStr], CleverClient],
) -> dict[str, SecretStr]:
    """District id -> token, by asking `/districts` with each token in turn.

    `open_client` builds a client for a token (e.g.
    `lambda token: CleverClient.from_settings(settings, token)`); each client is closed
    after use. A token Clever rejects (revoked, or rotated away) serves no district and is
    logged; any other failure is raised.
    """
    mapping: dict[str, SecretStr] = {}
    rejected = 0
    for token in tokens:
        async with open_client(token) as client:
            try:
                found = await districts(client)
            except CleverAuthError:
                rejected += 1
                continue
            for district in found:
                mapping[district.id] = token
    if rejected:
        logger.warning(
            "%d configured Clever tokens were rejected and serve no district",
            rejected,
            extra={"rejected": rejected},
        )
    return mapping


class OAuthSettings(Protocol):
    """The settings `CleverOAuthClient.from_settings` reads (`app.settings.Settings` fits)."""

    @property
    def clever_oauth_base_url(self) -> str: ...
    @property
    def clever_client_id(self) -> str | None: ...
    @property
    def clever_client_secret(self) -> SecretStr | None: ...
    @property
    def clever_timeout_seconds(self) -> float: ...
    @property
    def clever_max_retries(self) -> int: ...


class CleverOAuthClient:
    """Lists the district tokens Clever issued to the app, with its client id/secret.

    Calls `GET {oauth_base_url}/oauth/tokens?owner_type=district` with HTTP Basic auth,
    following `links[rel=next]`; pacing, retries and errors work as in `CleverClient`
    (a 401 raises `CleverAuthError`). Use as an async context manager or call `aclose()`.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        oauth_base_url: str = "https://clever.com",
        timeout_seconds: float = 30.0,
        max_retries: int = 6,
        requests_per_minute: int = 1200,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
    ) -> None:
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        self._base_url = oauth_base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url)
        self._client_id = client_id
        self._requester = Requester(
            auth=httpx.BasicAuth(client_id, secret.get_secret_value()),
            describe_auth_failure=lambda: "app client id/secret rejected by Clever",
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            requests_per_minute=requests_per_minute,
            http_client=http_client,
            transport=transport,
            clock=clock,
            sleep=sleep,
            rng=rng,
            backoff_base_seconds=backoff_base_seconds,
            backoff_max_seconds=backoff_max_seconds,
        )

    @classmethod
    def from_settings(
        cls, settings: OAuthSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> CleverOAuthClient:
        """Build the client from `CLEVER_OAUTH_BASE_URL`, `CLEVER_CLIENT_ID`/`_SECRET`.

        Raises ValueError when the client id or secret is not configured.
        """
        if not settings.clever_client_id or settings.clever_client_secret is None:
            raise ValueError("CLEVER_CLIENT_ID and CLEVER_CLIENT_SECRET must both be set")
        return cls(
            settings.clever_client_id,
            settings.clever_client_secret,
            oauth_base_url=settings.clever_oauth_base_url,
            timeout_seconds=settings.clever_timeout_seconds,
            max_retries=settings.clever_max_retries,
            http_client=http_client,
        )

    @property
    def request_count(self) -> int:
        """Requests sent so far, retries included."""
        return self._requester.request_count

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (unless it was passed in by the caller)."""
        await self._requester.aclose()

    def __repr__(self) -> str:
        return (
            f"CleverOAuthClient(oauth_base_url={self._base_url!r}, client_id={self._client_id!r})"
        )

    async def district_tokens(self) -> dict[str, SecretStr]:
        """District id -> bearer token, for every district that authorized the app.

        Entries that are not district tokens or lack an owner id or token are skipped.
        When a district has several tokens, the most recently created one wins.
        """
        chosen: dict[str, tuple[str, SecretStr]] = {}
        skipped = 0
        url = httpx.URL(f"{self._base_url}/oauth/tokens", params={"owner_type": "district"})
        async for _, entries in iter_json_pages(
            url, origin=self._origin, fetch=self._requester.get_json
        ):
            for entry in entries:
                parsed = _district_token(entry)
                if parsed is None:
                    skipped += 1
                    continue
                district_id, created, token = parsed
                if district_id not in chosen or created > chosen[district_id][0]:
                    chosen[district_id] = (created, token)
        if skipped:
            logger.warning(
                "Skipped %d Clever OAuth token entries that are not usable district tokens",
                skipped,
                extra={"skipped": skipped},
            )
        return {district_id: token for district_id, (_, token) in chosen.items()}

    async def district_token(self, district_id: str) -> SecretStr | None:
        """The district's current bearer token (the newest Clever lists), or None when the
        district no longer authorizes the app."""
        newest: tuple[str, SecretStr] | None = None
        url = httpx.URL(
            f"{self._base_url}/oauth/tokens",
            params={"owner_type": "district", "district": district_id},
        )
        async for _, entries in iter_json_pages(
            url, origin=self._origin, fetch=self._requester.get_json
        ):
            for entry in entries:
                parsed = _district_token(entry)
                if parsed is None or parsed[0] != district_id:
                    continue
                if newest is None or parsed[1] > newest[0]:
                    newest = (parsed[1], parsed[2])
        return newest[1] if newest is not None else None


def _district_token(entry: Any) -> tuple[str, str, SecretStr] | None:
    """(district id, created, token) of a `/oauth/tokens` entry, or None if unusable."""
    if not isinstance(entry, dict):
        return None
    owner = entry.get("owner")
    token = entry.get("access_token")
    if not isinstance(owner, dict) or owner.get("type") != "district":
        return None
    district_id = owner.get("id")
    if not isinstance(district_id, str) or not district_id:
        return None
    if not isinstance(token, str) or not token:
        return None
    created = entry.get("created")
    return district_id, created if isinstance(created, str) else "", SecretStr(token)
