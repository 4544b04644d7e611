"""Which Clever bearer token serves which district.

Tokens come from CLEVER_DISTRICT_TOKENS, or are listed by Clever for the app's client
id/secret. Either way the service learns a token's district by asking Clever, so a sync
needs only a district id. Tokens stay in this process's memory: never in job arguments,
Redis, logs or API responses.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from pydantic import SecretStr

from app.clever.client import CleverClient
from app.clever.discovery import CleverOAuthClient, map_district_tokens
from app.settings import Settings


class UnknownDistrictError(LookupError):
    """No configured or discovered token serves the district."""


class DistrictTokens:
    """District id -> bearer token, learned lazily, refreshed on a miss and after
    CLEVER_TOKENS_REFRESH_SECONDS, renewed when Clever rejects a district's token."""

    def __init__(self, settings: Settings, http_client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._http_client = http_client
        self._tokens: dict[str, SecretStr] = {}
        self._learned_at: float | None = None
        self._lock = asyncio.Lock()

    async def token_for(self, district_id: str) -> SecretStr:
        token = (await self._mapping()).get(district_id)
        if token is None:
            token = (await self._mapping(refresh=True)).get(district_id)
        if token is None:
            raise UnknownDistrictError(f"no Clever token serves district {district_id}")
        return token

    async def district_ids(self) -> list[str]:
        """Every district some token serves, sorted (asking Clever again once the mapping is
        older than CLEVER_TOKENS_REFRESH_SECONDS)."""
        return sorted(await self._mapping(refresh=True))

    def serves(self, district_id: str) -> bool:
        """Whether the mapping as last learned or renewed has a token for the district (no
        request to Clever)."""
        return district_id in self._tokens

    async def renew(self, district_id: str) -> SecretStr | None:
        """The district's current token after Clever rejected the one in use: asked of
        Clever's token endpoint with the app's credentials (or, with configured tokens, the
        one that still serves it); None when no token serves the district any more."""
        settings = self._settings
        async with self._lock:
            if settings.clever_client_id and settings.clever_client_secret:
                async with CleverOAuthClient.from_settings(
                    settings, http_client=self._http_client
                ) as oauth:
                    token = await oauth.district_token(district_id)
                if token is None:
                    self._tokens.pop(district_id, None)
                else:
                    self._tokens[district_id] = token
                return token
            self._tokens = await self._learn()
            self._learned_at = time.monotonic()
            return self._tokens.get(district_id)

    def client_for(self, token: SecretStr, district_id: str | None = None) -> CleverClient:
        """A client for `token`; for a district's client, a rejected token is renewed."""

        async def renew() -> SecretStr | None:
            assert district_id is not None
            return await self.renew(district_id)

        return CleverClient.from_settings(
            self._settings,
            token,
            district_id=district_id,
            http_client=self._http_client,
            renew_token=renew if district_id is not None else None,
        )

    async def _mapping(self, *, refresh: bool = False) -> dict[str, SecretStr]:
        async with self._lock:
            stale = self._learned_at is None or (
                refresh
                and time.monotonic() - self._learned_at
                >= self._settings.clever_tokens_refresh_seconds
            )
            if stale:
                self._tokens = await self._learn()
                self._learned_at = time.monotonic()
            return self._tokens

    async def _learn(self) -> dict[str, SecretStr]:
        settings = self._settings
        if settings.clever_district_tokens:
            return await map_district_tokens(settings.clever_district_tokens, self.client_for)
        if settings.clever_client_id and settings.clever_client_secret:
            async with CleverOAuthClient.from_settings(
                settings, http_client=self._http_client
            ) as oauth:
                return await oauth.district_tokens()
        return {}
