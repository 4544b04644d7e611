"""Answers of the hot reads kept in memory until the data under them changes, and ETags.

Postgres says when data changes: every committed write of mirrored or local data notifies
the channel `roster_changes` with the id of its district (`*` when the writer did not say
which), from triggers on the change log and on the local tables, delivered at commit. Each
API process listens on a connection of its own (`ChangeListener`) and counts what it hears
(`AnswerCache.changed`); an answer taken before its district's last change is not served.

An answer can thus outlive its data only by the notification's way from the commit to this
process, milliseconds. While the listening connection is down nothing is kept or served
from memory, so a lost notification cannot leave an answer stale.

Every kept answer has a strong `ETag` (a hash of its bytes); a request whose
`If-None-Match` names the current answer's tag gets `304 Not Modified`, without Postgres
when the answer is in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from app.api.auth import Caller, KeyCache, Principal
from app.api.keys import KeyGrant, Scope
from app.api.limits import Limits
from app.api.pagination import JSONText
from app.api.problems import ProblemError, problem_error_response
from app.observability.metrics import ANSWERS

logger = logging.getLogger(__name__)

CHANNEL = "roster_changes"
EVERY_DISTRICT = "*"
# How often the listening connection is checked; a dead one is replaced.
CHECK_SECONDS = 5.0
RECONNECT_SECONDS = 1.0
# No one answer may take more than this share of the cache.
LARGEST_SHARE = 8


@dataclass(frozen=True, slots=True)
class Answer:
    """A read's JSON and the district whose data it shows."""

    district_id: str
    body: bytes

    @property
    def etag(self) -> str:
        return f'"{hashlib.blake2b(self.body, digest_size=12).hexdigest()}"'


@dataclass(frozen=True, slots=True)
class _Kept:
    answer: Answer
    etag: str
    mark: int
    route: object
    """The route that answered (the request's `scope["route"]`), for metrics and audit."""


class AnswerCache:
    """Answers by request, least recently used dropped first, within `max_bytes` of bodies.

    `mark()` before reading; `put(key, answer, mark)` after. An answer is served while no
    change of its district (or of every district) was heard after its mark.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._bytes = 0
        self._heard = 0
        self._changed_at: dict[str, int] = {}
        self._everything_changed_at = 0
        self.listening = False

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0 and self.listening

    @property
    def size(self) -> int:
        """Bytes of the bodies kept."""
        return self._bytes

    def mark(self) -> int:
        return self._heard

    def get(self, key: Hashable) -> _Kept | None:
        kept = self._entries.get(key) if self.enabled else None
        if kept is not None and not self._current(kept.answer.district_id, kept.mark):
            self._drop(key)
            kept = None
        if kept is not None:
            self._entries.move_to_end(key)
        return kept

    def put(self, key: Hashable, answer: Answer, mark: int, route: object = None) -> str:
        """Keep `answer`, read after `mark`, unless its district changed since; its ETag."""
        etag = answer.etag
        size = len(answer.body)
        if (
            not self.enabled
            or size > self._max_bytes // LARGEST_SHARE
            or not self._current(answer.district_id, mark)
        ):
            return etag
        self._drop(key)
        self._entries[key] = _Kept(answer, etag, mark, route)
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= len(oldest.answer.body)
        return etag

    def changed(self, district_id: str) -> None:
        """A change of `district_id`'s data (or of every district's, `*`) was committed."""
        self._heard += 1
        if district_id == EVERY_DISTRICT:
            self._everything_changed_at = self._heard
            self.clear()
        else:
            self._changed_at[district_id] = self._heard

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _current(self, district_id: str, mark: int) -> bool:
        return self._everything_changed_at <= mark and self._changed_at.get(district_id, 0) <= mark

    def _drop(self, key: Hashable) -> None:
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._bytes -= len(kept.answer.body)


class ChangeListener:
    """Listens on `roster_changes` for the cache, on one connection of its own.

    The connection is replaced when it closes, or fails a check every CHECK_SECONDS; in
    between the cache is off (`listening` false), and everything kept before is dropped.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], cache: AnswerCache):
        self._connect = connect
        self._cache = cache

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning("change listener lost its connection: %s", exc)
            self._cache.listening = False
            self._cache.changed(EVERY_DISTRICT)
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self) -> None:
        connection = await self._connect()
        lost = asyncio.Event()

        def closed(_: object) -> None:
            # At once, before any request is answered from what this connection vouched for.
            self._cache.listening = False
            lost.set()

        try:
            connection.add_termination_listener(closed)
            await connection.add_listener(CHANNEL, self._notified)
            # Whatever was read before now may have missed a change: start afresh.
            self._cache.changed(EVERY_DISTRICT)
            self._cache.listening = True
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), CHECK_SECONDS)
                if lost.is_set():
                    raise ConnectionError("the listening connection closed")
                # A connection can also die silently (a network gone): ask it.
                await asyncio.wait_for(connection.fetchval("SELECT 1"), CHECK_SECONDS)
        finally:
            self._cache.listening = False
            connection.terminate()

    def _notified(
        self, connection: asyncpg.Connection, pid: int, channel: str, payload: str
    ) -> None:
        self._cache.changed(payload or EVERY_DISTRICT)


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "The answer is the one whose `ETag` the request's `If-None-Match`"
        " names: unchanged since."
    }
}


async def answer(
    request: Request,
    principal: Principal,
    read: Callable[[], Awaitable[Answer | None]],
    *,
    keep: bool = True,
) -> Response | None:
    """The kept answer to this request, else `read()`'s (kept if `keep`); 304 when
    `If-None-Match` names its ETag. None when `read` finds nothing to show (the caller's
    404, never kept).

    An answer is kept per path and query, the caller's districts and sensitive-field
    access (what decides what a key sees), and the date (a term is current by the date).
    """
    cache: AnswerCache = request.state.answers
    key = answer_key(request.scope, principal)
    kept = cache.get(key) if keep else None
    if kept is not None:
        return respond(request, kept.answer.body, kept.etag, "kept")
    mark = cache.mark()
    found = await read()
    if found is None:
        return None
    etag = cache.put(key, found, mark, request.scope.get("route")) if keep else found.etag
    return respond(request, found.body, etag, "read")


def answer_key(scope: ASGIScope, principal: Principal) -> tuple[Hashable, ...]:
    """What a kept answer is found by: path and query as sent, the caller's districts and
    sensitive-field access (what decides what a key sees), and the date (a term is current
    by the date)."""
    return (
        scope["path"],
        scope["query_string"],
        principal.grant.district_ids,
        principal.sensitive,
        datetime.now(UTC).date(),
    )


class KeptAnswersMiddleware:
    """Answers a GET whose answer is kept before routing, the way its route would.

    Only what a kept answer proves is skipped: the request is the same path and query as one
    its route answered (so its parameters were valid), from a key with the same districts
    and access. The caller still needs a trusted cached key holding `roster:read`, and the
    lock-out and rate limit are applied as on every request; anything else (an unknown or
    uncached key, a miss) goes on to the app unchanged. Outer middleware (audit, metrics,
    security headers) sees the answer as from the route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        kept = self._kept(scope) if scope["type"] == "http" else None
        if kept is None:
            await self.app(scope, receive, send)
            return
        found, grant = kept
        state = scope["state"]
        request = Request(scope, receive)
        limits: Limits = state["limits"]
        caller = Caller(client=request.client.host if request.client else "unknown")
        state["caller"] = caller
        response: Response
        try:
            await limits.check_lockout(caller.client)
            caller.key_id = grant.key_id
            caller.quota = await limits.admit(str(grant.key_id))
        except ProblemError as exc:
            response = problem_error_response(request, exc)
        else:
            scope["route"] = found.route
            response = respond(request, found.answer.body, found.etag, "kept")
        await response(scope, receive, send)

    @staticmethod
    def _kept(scope: ASGIScope) -> tuple[_Kept, KeyGrant] | None:
        if scope["method"] != "GET":
            return None
        state = scope.get("state") or {}
        cache: AnswerCache | None = state.get("answers")
        if cache is None or not cache.size:
            return None
        secret = _bearer_secret(scope)
        keys: KeyCache | None = state.get("keys")
        grant = keys.peek(secret) if keys is not None and secret is not None else None
        if grant is None:
            return None
        principal = Principal(grant)
        if not principal.allows(Scope.READ):
            return None
        found = cache.get(answer_key(scope, principal))
        return (found, grant) if found is not None else None


def _bearer_secret(scope: ASGIScope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None
    return None


def respond(request: Request, body: bytes, etag: str, source: str) -> Response:
    # No caching headers: answers under /v1 are `no-store` (student records stay out of
    # browsers and shared caches); a client that keeps the answer itself revalidates it.
    headers = {"ETag": etag}
    tags = _tags(request.headers.get("if-none-match"))
    if etag in tags or "*" in tags:
        ANSWERS.labels("not_modified").inc()
        return Response(status_code=304, headers=headers)
    ANSWERS.labels(source).inc()
    return JSONText(body, headers=headers)


def _tags(header: str | None) -> set[str]:
    """The entity tags of an `If-None-Match`, compared weakly (RFC 9110); `*` is any."""
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
