"""Who is calling: bearer API keys, their scopes and the districts they may see.

Every endpoint but health takes one of the `*Access` dependencies below. A missing, unknown,
revoked or expired key is 401, a key without the scope 403; a district the key may not see
is answered 404 by the endpoints, exactly as an id that does not exist. A key over its rate
limit, or an address locked out after too many bad keys, is 429 (`app.api.limits`).

Who called is left in the request's state (`Caller`) for the audit trail and the
`RateLimit-*` headers, which `AccessMiddleware` (`app.api.access`) writes once the answer is
known.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.keys import KeyGrant, Scope, digest, find_key
from app.api.limits import Limits, Quota
from app.api.problems import VALIDATION_RESPONSE, Problem, ProblemError
from app.api.query import reject_unknown_query_parameters

logger = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `roster keys create`, sent as `Authorization: Bearer rk_...`.",
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown, revoked or expired one."},
    403: {"model": Problem, "description": "The API key lacks the scope this endpoint needs."},
    429: {
        "model": Problem,
        "description": "The key's requests this minute are spent, or the client's address is"
        " locked out after too many bad keys; `Retry-After` says when to try again.",
    },
    # Declared for every keyed endpoint, so FastAPI does not document its own (differently
    # shaped) validation error for those that take parameters.
    422: VALIDATION_RESPONSE,
}


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid key."""

    grant: KeyGrant

    @property
    def name(self) -> str:
        return self.grant.name

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.grant.scopes or scope in self.grant.scopes

    @property
    def sensitive(self) -> bool:
        """Whether sensitive student fields may be shown."""
        return self.allows(Scope.SENSITIVE)

    @property
    def district_ids(self) -> list[str] | None:
        """The districts the key may see, or None for all: ready to bind as `text[]`."""
        ids = self.grant.district_ids
        return sorted(ids) if ids is not None else None

    def sees(self, district_id: str | None) -> bool:
        ids = self.grant.district_ids
        return district_id is not None and (ids is None or district_id in ids)


class KeyCache:
    """Recently looked-up keys, so a busy client costs one lookup per key every few seconds.

    Unknown keys are cached too (as None), so guessing does not reach the database on every
    request. Revocation takes effect within `ttl` seconds. Requests that miss together share
    one lookup, so an entry expiring under load is not looked up once per request in flight.
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[float, KeyGrant | None]] = {}
        self._loading: dict[bytes, asyncio.Task[KeyGrant | None]] = {}

    async def get(
        self, secret: str, load: Callable[[str], Awaitable[KeyGrant | None]]
    ) -> KeyGrant | None:
        key = digest(secret)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, secret, load))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        # Shielded: a caller that gives up (a client gone) does not cancel the others' lookup.
        return await asyncio.shield(task)

    def peek(self, secret: str) -> KeyGrant | None:
        """The grant of `secret` if it is cached, still trusted and not expired; None when it
        is not cached, cached as unknown, or expired (the full lookup decides those)."""
        entry = self._entries.get(digest(secret))
        if entry is None or entry[0] <= self._clock() or entry[1] is None:
            return None
        grant = entry[1]
        if grant.expires_at is not None and grant.expires_at <= datetime.now(UTC):
            return None
        return grant

    async def _load(
        self, key: bytes, secret: str, load: Callable[[str], Awaitable[KeyGrant | None]]
    ) -> KeyGrant | None:
        grant = await load(secret)
        if self._ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (self._clock() + self._ttl, grant)
        return grant


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass
class Caller:
    """Who a request came from, as far as authentication got: what the audit trail keeps."""

    client: str
    key_id: uuid.UUID | None = None
    quota: Quota | None = None


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


async def authenticate(request: Request, credentials: BearerCredentials) -> Principal:
    caller = Caller(client=request.client.host if request.client else "unknown")
    request.state.caller = caller
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    limits: Limits = request.state.limits
    await limits.check_lockout(caller.client)
    pool: asyncpg.Pool = request.state.reads
    cache: KeyCache = request.state.keys

    async def load(secret: str) -> KeyGrant | None:
        async with pool.acquire() as connection:
            return await find_key(connection, secret)

    grant = await cache.get(credentials.credentials, load)
    # A cached grant may have expired since it was looked up.
    if grant is None or (grant.expires_at is not None and grant.expires_at <= datetime.now(UTC)):
        await limits.failed(caller.client)
        # Never the presented secret, not even its first characters.
        logger.warning("authentication failed", extra={"client": caller.client})
        raise _unauthorized("The API key is unknown, revoked or expired.")
    caller.key_id = grant.key_id
    caller.quota = await limits.admit(str(grant.key_id))
    return Principal(grant)


def check_scope(request: Request, principal: Principal, scope: Scope) -> None:
    """403 unless the key holds `scope`; then 422 for query parameters the endpoint does not
    take (only once the caller is known, so a request without a valid key is always 401)."""
    if not principal.allows(scope):
        raise ProblemError(403, f"This endpoint needs an API key with the `{scope}` scope.")
    reject_unknown_query_parameters(request)


def require(scope: Scope) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency admitting keys that hold `scope` (or `admin`)."""

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        check_scope(request, principal, scope)
        return principal

    return dependency


ReadAccess = Annotated[Principal, Depends(require(Scope.READ))]
SyncAccess = Annotated[Principal, Depends(require(Scope.SYNC_WRITE))]
AdminAccess = Annotated[Principal, Depends(require(Scope.ADMIN))]
