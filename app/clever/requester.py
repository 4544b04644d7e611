"""The HTTP core shared by the data client and the OAuth client: one long-lived
`httpx.AsyncClient`, pacing, bounded retries and the mapping of statuses to errors."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from app.clever.errors import CleverAuthError, CleverRequestError, CleverTransientError
from app.clever.pacing import Clock, RequestPacer, Sleep, backoff_delay, rate_limit_wait

logger = logging.getLogger("app.clever")

_RETRYABLE_EXCEPTIONS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)
# Server-side messages are echoed into errors for diagnosis; bounded so that a verbose
# error page cannot flood logs.
_MAX_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON object answer: its status, body and the request's path + query."""

    status: int
    body: dict[str, Any]
    path: str


class BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>` at send time, so the token lives only here."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=**********)"


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt worth retrying."""

    reason: str
    status: int | None = None
    rate_limit_wait: float | None = None
    cause: BaseException | None = None


class Requester:
    """Sends GET requests with pacing, retries and typed errors.

    Retries 5xx (except 501), 408, 429, timeouts, connection errors and undecodable 2xx
    bodies, at most `max_retries` times; raises `CleverAuthError` on 401,
    `CleverRequestError` on any other unexpected status, `CleverTransientError` when the
    retries are spent. Statuses listed in `tolerated` are returned to the caller instead.

    With `renew_auth`, a 401 first asks it for fresh credentials (a rotated token) and, when
    it gives some, sends the request again with them, once; they are kept for later requests.
    """

    def __init__(
        self,
        *,
        auth: httpx.Auth,
        describe_auth_failure: Callable[[], str],
        timeout_seconds: float,
        max_retries: int,
        requests_per_minute: int,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        clock: Clock | None,
        sleep: Sleep | None,
        rng: random.Random | None,
        backoff_base_seconds: float,
        backoff_max_seconds: float,
        renew_auth: Callable[[], Awaitable[httpx.Auth | None]] | None = None,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if http_client is not None and transport is not None:
            raise ValueError("pass either http_client or transport, not both")
        self._auth = auth
        self._renew_auth = renew_auth
        self._describe_auth_failure = describe_auth_failure
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self._max_retries = max_retries
        self._clock = clock or time.time
        self._sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._pacer = RequestPacer(requests_per_minute, clock=self._clock, sleep=self._sleep)
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            transport=transport,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=20, keepalive_expiry=60.0),
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        self.request_count = 0
        """Requests sent so far, every attempt included."""
        self.error_counts: collections.Counter[str] = collections.Counter()
        """Failed attempts by HTTP status (`"429"`, `"503"`, ...), or `"network"` for those
        that got no answer."""

    async def aclose(self) -> None:
        """Close the HTTP client if this requester created it."""
        if self._owns_client:
            await self._client.aclose()

    async def get_json(
        self, url: httpx.URL, *, tolerated: frozenset[int] = frozenset()
    ) -> JsonResponse:
        """GET `url` and decode its JSON object body, retrying transient failures."""
        path = url.raw_path.decode("ascii")
        retries = 0
        renewed = False
        while True:
            await self._pacer.acquire()
            self.request_count += 1
            try:
                outcome = await self._attempt(url, path, tolerated)
            except CleverAuthError:
                if renewed or self._renew_auth is None:
                    raise
                renewed = True
                fresh = await self._renew_auth()
                if fresh is None:
                    raise
                logger.info("Clever rejected the credentials; retrying with renewed ones")
                self._auth = fresh
                continue
            if isinstance(outcome, JsonResponse):
                return outcome
            if retries >= self._max_retries:
                raise _exhausted(path, outcome, attempts=retries + 1)
            retries += 1
            await self._wait_before_retry(path, outcome, retries)

    async def _attempt(
        self, url: httpx.URL, path: str, tolerated: frozenset[int]
    ) -> JsonResponse | _Failure:
        try:
            response = await self._client.get(url, auth=self._auth, timeout=self._timeout)
        except _RETRYABLE_EXCEPTIONS as exc:
            self.error_counts["network"] += 1
            return _Failure(reason=type(exc).__name__, cause=exc)
        status = response.status_code
        if not 200 <= status < 300:
            self.error_counts[str(status)] += 1
        if status == 429:
            wait = rate_limit_wait(response.headers, self._clock())
            return _Failure(reason="rate limited", status=status, rate_limit_wait=wait)
        if status == 408 or (status >= 500 and status != 501):
            return _Failure(reason=f"status {status}", status=status)
        if status == 401:
            raise CleverAuthError(
                self._describe_auth_failure(), method="GET", path=path, status=status
            )
        if status in tolerated:
            return JsonResponse(status=status, body=_error_body(response), path=path)
        if not 200 <= status < 300:
            detail = error_message(_error_body(response))
            message = f"Clever refused the request{': ' + detail if detail else ''}"
            raise CleverRequestError(message, method="GET", path=path, status=status)
        try:
            body = decode_json(response.content)
        except ValueError as exc:
            return _Failure(reason="undecodable JSON body", status=status, cause=exc)
        if not isinstance(body, dict):
            raise CleverRequestError(
                "Clever answered a JSON body that is not an object",
                method="GET",
                path=path,
                status=status,
            )
        return JsonResponse(status=status, body=body, path=path)

    async def _wait_before_retry(self, path: str, failure: _Failure, retry: int) -> None:
        if failure.status == 429 and failure.rate_limit_wait is not None:
            # Holding the pacer (rather than sleeping here) also stops every other
            # request on this token until the limit resets.
            self._pacer.hold_until(self._clock() + failure.rate_limit_wait)
            logger.info(
                "Clever rate limit hit on GET %s (429); waiting %.2fs before retry %d/%d",
                path,
                failure.rate_limit_wait,
                retry,
                self._max_retries,
                extra=_log_fields(path, failure.status, retry, failure.rate_limit_wait),
            )
            return
        delay = backoff_delay(retry, base=self._backoff_base, cap=self._backoff_max, rng=self._rng)
        logger.warning(
            "Clever GET %s failed (%s); retry %d/%d in %.2fs",
            path,
            failure.reason,
            retry,
            self._max_retries,
            delay,
            extra=_log_fields(path, failure.status, retry, delay),
        )
        if delay > 0:
            await self._sleep(delay)


def _exhausted(path: str, failure: _Failure, *, attempts: int) -> CleverTransientError:
    error = CleverTransientError(
        f"Clever kept failing ({failure.reason}) after {attempts} attempts",
        method="GET",
        path=path,
        status=failure.status,
    )
    error.attempts = attempts
    error.__cause__ = failure.cause
    return error


def _log_fields(path: str, status: int | None, retry: int, wait: float) -> dict[str, Any]:
    return {
        "clever_method": "GET",
        "clever_path": path,
        "clever_status": status,
        "retry": retry,
        "wait_seconds": round(wait, 3),
    }


def decode_json(content: bytes) -> Any:
    """A JSON body; ValueError when it is none (truncated, not UTF-8, nested too deep).

    orjson reads nearly every body. What it refuses but the standard library reads, string
    escapes of lone surrogates (`"\\ud800"`, which no UTF-8 text can hold), is read with
    those replaced by U+FFFD, so one such value does not make a whole page unreadable.
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as error:
        first = error
    try:
        return _without_lone_surrogates(json.loads(content))
    except (ValueError, RecursionError):
        raise first from None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def error_message(body: dict[str, Any]) -> str:
    """The `message` of a Clever error body, shortened; empty when there is none."""
    message = body.get("message")
    return message[:_MAX_DETAIL_CHARS] if isinstance(message, str) else ""


def resolve_link(base: httpx.URL, uri: str, *, path: str) -> httpx.URL:
    """Resolve a paging link against `base`, refusing links to another origin.

    Credentials are attached to every request, so they must never follow a link to a
    host named by a response body. `path` names the page the link came from.
    """
    url = base.join(uri)
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise CleverRequestError(
            "Clever sent a paging link to another host", method="GET", path=path
        )
    return url


def next_link(body: dict[str, Any], *, path: str) -> str | None:
    """The `uri` of the `links[rel=next]` entry of a page body, or None on the last page.

    A `links` value that is not a list is an error rather than "no next page": reading
    it as the end would silently truncate a sync.
    """
    links = body.get("links")
    if links is None:
        return None
    if not isinstance(links, list):
        raise CleverRequestError(
            "Clever sent a page whose links are not a list", method="GET", path=path
        )
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next":
            uri = link.get("uri")
            if isinstance(uri, str) and uri:
                return uri
    return None


def page_entries(response: JsonResponse) -> list[Any]:
    """The `data` list of a page body; a body without one is a `CleverRequestError`."""
    entries = response.body.get("data")
    if not isinstance(entries, list):
        raise CleverRequestError(
            "Clever sent a page without a data list",
            method="GET",
            path=response.path,
            status=response.status,
        )
    return entries


async def iter_json_pages(
    url: httpx.URL,
    *,
    origin: httpx.URL,
    fetch: Callable[[httpx.URL], Awaitable[JsonResponse]],
) -> AsyncIterator[tuple[JsonResponse, list[Any]]]:
    """Fetch `url` and the pages its `links[rel=next]` chain to; yield each page's
    response and `data` entries.

    Stops after a page without a next link, or at the first empty page (Clever may link
    to one at the end). A link back to a page already read is a `CleverRequestError`,
    not an endless loop.
    """
    seen = {url}
    while True:
        response = await fetch(url)
        entries = page_entries(response)
        if not entries:
            return
        yield response, entries
        uri = next_link(response.body, path=response.path)
        if uri is None:
            return
        url = resolve_link(origin, uri, path=response.path)
        if url in seen:
            raise CleverRequestError(
                "Clever sent a next link back to a page already read",
                method="GET",
                path=response.path,
            )
        seen.add(url)
