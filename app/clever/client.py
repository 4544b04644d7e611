"""`CleverClient`: reads one district's data from the Clever Data API v3.0/v3.1.

Typical use::

    async with CleverClient(token, api_version="v3.1", district_id="5f...") as clever:
        async for page in clever.iter_pages("users", role="student"):
            for user in page.records:
                ...  # user.raw is the JSON object Clever sent
        newest = await clever.latest_event_id()

Collections are read page by page, so memory stays flat whatever the district's size.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from app.clever.errors import CleverEventsUnavailable, CleverRequestError
from app.clever.models import RECORD_MODELS, ROLE_NAMES, CleverRecord, Event
from app.clever.pacing import Clock, Sleep
from app.clever.requester import (
    BearerAuth,
    JsonResponse,
    Requester,
    error_message,
    iter_json_pages,
    next_link,
    page_entries,
)

API_VERSIONS = ("v3.0", "v3.1")
MAX_PAGE_SIZE = 10_000
"""Clever's largest `limit`; it answers 413 above."""

_EVENTS_UNAVAILABLE = frozenset({403, 404})

R = TypeVar("R", bound=CleverRecord)


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A page entry that could not be read as a record (no usable `id`, not an object).

    `reason` names the problem without quoting the data (`id: missing`).
    """

    raw: Any
    reason: str


class Page(Generic[R]):
    """One page of a collection, as Clever sent it.

    Parsing into models happens on first access to `records` or `invalid`, so a caller
    that only needs the JSON (`raw_records`) does not pay for validation.

    Attributes:
        path: path and query of the request that returned this page.
        next_path: the `links[rel=next]` URI, or None on the last page.
    """

    __slots__ = ("_entries", "_invalid", "_model", "_records", "next_path", "path")

    def __init__(
        self, model: type[R], entries: list[Any], *, path: str, next_path: str | None
    ) -> None:
        self._model = model
        self._entries = entries
        self._records: list[R] | None = None
        self._invalid: list[InvalidRecord] = []
        self.path = path
        self.next_path = next_path

    @property
    def raw_records(self) -> list[dict[str, Any]]:
        """The record objects exactly as Clever sent them, in order (no parsing)."""
        return [raw for entry in self._entries if isinstance(raw := _entry_data(entry), dict)]

    @property
    def records(self) -> list[R]:
        """The parsed records, in Clever's order; each keeps its JSON as `.raw`."""
        if self._records is None:
            self._records = self._parse()
        return self._records

    @property
    def invalid(self) -> list[InvalidRecord]:
        """Entries that could not be parsed at all (no usable `id`, not an object)."""
        if self._records is None:
            self._records = self._parse()
        return self._invalid

    @property
    def entry_count(self) -> int:
        """How many entries the page holds, readable or not."""
        return len(self._entries)

    @property
    def last_id(self) -> str | None:
        """The id of the page's last record: a `starting_after` cursor to resume from."""
        for raw in reversed(self.raw_records):
            record_id = raw.get("id")
            if isinstance(record_id, str) and record_id:
                return record_id
        return None

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"Page({self._model.__name__}, entries={len(self._entries)}, path={self.path!r})"

    def _parse(self) -> list[R]:
        records: list[R] = []
        for entry in self._entries:
            raw = _entry_data(entry)
            if not isinstance(raw, dict):
                self._invalid.append(InvalidRecord(raw=entry, reason="entry has no data object"))
                continue
            try:
                records.append(self._model.model_validate(raw))
            except ValidationError as exc:
                self._invalid.append(InvalidRecord(raw=raw, reason=_reason(exc)))
        return records


@dataclass(frozen=True, slots=True)
class NotFound:
    """Clever answered 404 for a single record: it was deleted or is no longer shared."""

    collection: str
    id: str


class CleverSettings(Protocol):
    """The settings `CleverClient.from_settings` reads (`app.settings.Settings` fits)."""

    @property
    def clever_api_base_url(self) -> str: ...
    @property
    def clever_api_version(self) -> str: ...
    @property
    def clever_page_size(self) -> int: ...
    @property
    def clever_timeout_seconds(self) -> float: ...
    @property
    def clever_max_retries(self) -> int: ...
    @property
    def clever_requests_per_minute(self) -> int: ...


class CleverClient:
    """Client of the Clever Data API for one district bearer token.

    Holds one long-lived `httpx.AsyncClient` (keep-alive, explicit timeouts); use it as
    an async context manager or call `aclose()`. Requests are paced under
    `requests_per_minute`; 429s wait for `Retry-After`/`X-RateLimit-Reset`; 5xx, 408,
    timeouts, connection errors and undecodable bodies are retried with capped
    exponential backoff and full jitter, `max_retries` times at most.

    Errors (`app.clever.errors`): `CleverAuthError` (401), `CleverRequestError`
    (400/413/501 and other permanent failures, never retried), `CleverTransientError`
    (retries spent), `CleverEventsUnavailable` (events cursor unknown or events off).

    Args:
        token: the district's bearer token; kept as a `SecretStr`, never logged.
        base_url: API origin, without the version (`https://api.clever.com`).
        api_version: `v3.0` or `v3.1`; requests go to `/{api_version}/...`.
        district_id: the token's district when known; named in "token rejected" errors.
        page_size: default `limit` of collection pages (1..10000).
        timeout_seconds: read/write/pool timeout of each request (connect: at most 10 s).
        max_retries: retries after the first attempt before giving up.
        requests_per_minute: pacing budget of this token.
        http_client: an `httpx.AsyncClient` to use instead of creating one; the caller
            keeps ownership and closes it.
        transport: an httpx transport for the client this class creates (tests).
        clock: unix-seconds clock used for pacing and `X-RateLimit-Reset` (`time.time`).
        sleep: async sleep used for every wait (`asyncio.sleep`).
        rng: random source of the backoff jitter.
        backoff_base_seconds: backoff ceiling of the first retry; doubles per retry.
        backoff_max_seconds: cap of the backoff ceiling.
        renew_token: called when Clever rejects the token (401): returns the district's
            current token, or None when there is none; a request rejected once is sent
            again with the new token.
    """

    def __init__(
        self,
        token: SecretStr | str,
        *,
        base_url: str = "https://api.clever.com",
        api_version: str = "v3.0",
        district_id: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
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
        renew_token: Callable[[], Awaitable[SecretStr | None]] | None = None,
    ) -> None:
        version = str(api_version)
        if version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {', '.join(API_VERSIONS)}")
        self._base_url = base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url)
        self._version = version
        self._page_size = _checked_limit(page_size)
        self.district_id = district_id
        """The token's district, when known (used in "token rejected" errors)."""
        secret = token if isinstance(token, SecretStr) else SecretStr(token)

        async def renew_auth() -> httpx.Auth | None:
            assert renew_token is not None
            fresh = await renew_token()
            if fresh is None or fresh.get_secret_value() == secret.get_secret_value():
                return None
            return BearerAuth(fresh)

        self._requester = Requester(
            auth=BearerAuth(secret),
            renew_auth=renew_auth if renew_token is not None else None,
            describe_auth_failure=self._describe_auth_failure,
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
        cls,
        settings: CleverSettings,
        token: SecretStr | str,
        *,
        district_id: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        renew_token: Callable[[], Awaitable[SecretStr | None]] | None = None,
    ) -> CleverClient:
        """Build a client for `token` from the service settings (`CLEVER_*`)."""
        return cls(
            token,
            base_url=settings.clever_api_base_url,
            api_version=settings.clever_api_version,
            district_id=district_id,
            page_size=settings.clever_page_size,
            timeout_seconds=settings.clever_timeout_seconds,
            max_retries=settings.clever_max_retries,
            requests_per_minute=settings.clever_requests_per_minute,
            http_client=http_client,
            renew_token=renew_token,
        )

    @property
    def api_version(self) -> str:
        """`v3.0` or `v3.1`."""
        return self._version

    @property
    def request_count(self) -> int:
        """Requests sent to Clever by this client so far, retries included."""
        return self._requester.request_count

    @property
    def error_counts(self) -> dict[str, int]:
        """Failed attempts so far by HTTP status, or `network` when no answer came."""
        return dict(self._requester.error_counts)

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
            f"CleverClient(base_url={self._base_url!r}, api_version={self._version!r}, "
            f"district_id={self.district_id!r})"
        )

    @overload
    def iter_pages(
        self,
        collection: type[R],
        *,
        role: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> AsyncIterator[Page[R]]: ...
    @overload
    def iter_pages(
        self,
        collection: str,
        *,
        role: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> AsyncIterator[Page[CleverRecord]]: ...
    async def iter_pages(
        self,
        collection: type[CleverRecord] | str,
        *,
        role: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> AsyncIterator[Page[Any]]:
        """Read a district-level collection page by page, following `links[rel=next]`.

        Args:
            collection: a record model (`User`) or a collection name (`"users"`): one of
                districts, schools, users, sections, terms, courses.
            role: for users only: student, teacher, staff, district_admin or contact.
            limit: records per page, 1..10000 (default: the client's `page_size`).
            starting_after: resume after this record id.

        Stops when a page has no next link or is empty. Pages with no entries are not
        yielded. Raises ValueError for an unknown collection, role or limit before any
        request is sent.
        """
        model = _record_model(collection)
        params: list[tuple[str, str]] = [("limit", str(self._limit(limit)))]
        if role is not None:
            if model.collection != "users" or role not in ROLE_NAMES:
                raise ValueError(f"role filters users only and must be one of {ROLE_NAMES}")
            params.append(("role", role))
        if starting_after is not None:
            params.append(("starting_after", starting_after))
        url = self._url(model.collection, params)
        async for response, entries in iter_json_pages(
            url, origin=self._origin, fetch=self._requester.get_json
        ):
            yield _page(response, entries, model)

    @overload
    async def get(self, collection: type[R], record_id: str) -> R | NotFound: ...
    @overload
    async def get(self, collection: str, record_id: str) -> CleverRecord | NotFound: ...
    async def get(self, collection: type[CleverRecord] | str, record_id: str) -> Any:
        """Fetch one record (`GET /{collection}/{id}`); `NotFound` when Clever answers 404."""
        model = _record_model(collection)
        url = self._url(f"{model.collection}/{quote(record_id, safe='')}")
        response = await self._requester.get_json(url, tolerated=frozenset({404}))
        if response.status == 404:
            return NotFound(collection=model.collection, id=record_id)
        raw = response.body.get("data")
        if not isinstance(raw, dict):
            raise _shape_error("a record answer without a data object", response)
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise _shape_error(f"a record without a usable id ({_reason(exc)})", response) from None

    async def iter_events(
        self,
        *,
        starting_after: str | None = None,
        record_types: Iterable[str] = (),
        limit: int | None = None,
    ) -> AsyncIterator[Page[Event]]:
        """Read events oldest first, page by page, after the event id `starting_after`.

        Without `starting_after`, reading starts at the oldest event Clever retains.
        `record_types` (e.g. `["users", "sections"]`) restricts the events to those
        collections. Raises `CleverEventsUnavailable` when Clever no longer knows the
        cursor (404) or events are not enabled for the district (403).
        """
        params: list[tuple[str, str]] = [("limit", str(self._limit(limit)))]
        if starting_after is not None:
            params.append(("starting_after", starting_after))
        params.extend(("record_type", record_type) for record_type in record_types)
        url = self._url("events", params)
        async for response, entries in iter_json_pages(
            url, origin=self._origin, fetch=self._get_events_json
        ):
            yield _page(response, entries, Event)

    async def latest_event_id(self) -> str | None:
        """The id of the district's newest event, or None when it has no events.

        Record it before a full sync and read events after it once the sync is done.
        Raises `CleverEventsUnavailable` when events are not enabled for the district.
        """
        url = self._url("events", [("ending_before", "last"), ("limit", "1")])
        response = await self._get_events_json(url)
        page = _page(response, page_entries(response), Event)
        if page.records:
            return page.records[-1].id
        if page.invalid:
            raise _shape_error("a newest event without a usable id", page.path)
        return None

    async def _get_events_json(self, url: httpx.URL) -> JsonResponse:
        response = await self._requester.get_json(url, tolerated=_EVENTS_UNAVAILABLE)
        if response.status in _EVENTS_UNAVAILABLE:
            detail = error_message(response.body)
            reason = "events not enabled" if response.status == 403 else "event cursor unknown"
            raise CleverEventsUnavailable(
                f"{reason}{': ' + detail if detail else ''}",
                method="GET",
                path=response.path,
                status=response.status,
            )
        return response

    def _url(self, path: str, params: list[tuple[str, str]] | None = None) -> httpx.URL:
        return httpx.URL(f"{self._base_url}/{self._version}/{path}", params=params)

    def _limit(self, limit: int | None) -> int:
        return self._page_size if limit is None else _checked_limit(limit)

    def _describe_auth_failure(self) -> str:
        return f"token rejected for district {self.district_id or 'unknown'}"


def _record_model(collection: type[CleverRecord] | str) -> type[CleverRecord]:
    if isinstance(collection, str):
        model = RECORD_MODELS.get(collection)
        if model is None:
            raise ValueError(f"unknown collection {collection!r}; one of {sorted(RECORD_MODELS)}")
        return model
    if collection not in RECORD_MODELS.values():
        raise ValueError(f"{collection.__name__} is not a collection record model")
    return collection


def _checked_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return limit


def _page(response: JsonResponse, entries: list[Any], model: type[R]) -> Page[R]:
    next_path = next_link(response.body, path=response.path)
    return Page(model, entries, path=response.path, next_path=next_path)


def _entry_data(entry: Any) -> Any:
    """The record of an envelope entry (`{"data": {...}, "uri": ...}`)."""
    return entry.get("data") if isinstance(entry, dict) else None


def _reason(exc: ValidationError) -> str:
    """`id: missing`-style summary of a validation error, without the input values."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'record'}: {error['type']}"
        for error in exc.errors(include_input=False)
    )


def _shape_error(what: str, source: JsonResponse | str) -> CleverRequestError:
    path = source.path if isinstance(source, JsonResponse) else source
    status = source.status if isinstance(source, JsonResponse) else None
    return CleverRequestError(f"Clever sent {what}", method="GET", path=path, status=status)
