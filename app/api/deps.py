"""Dependencies the roster routers share: a connection, id parameters, the caller's scope."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Path, Query, Request

from app.api.auth import BearerCredentials, Principal, authenticate, check_scope
from app.api.keys import Scope
from app.api.pagination import JSONText, ListFilters, PageParams, object_response
from app.api.problems import ProblemError
from app.mirror.queries import changes
from app.mirror.queries.collections import Kind, Listing, Visibility, get_record

# Clever ids are 24 hex characters; anything outside this is refused (422) before a query.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True)
class Reader:
    """The caller of a read endpoint and a pooled connection to answer it with."""

    principal: Principal
    connection: asyncpg.Connection


async def get_reader(request: Request, credentials: BearerCredentials) -> AsyncIterator[Reader]:
    """A key with `roster:read` and one connection (reads run as single statements).

    One dependency rather than a chain (key, scope, connection): resolving dependencies is
    a large share of a read's Python time.
    """
    principal = await authenticate(request, credentials)
    check_scope(request, principal, Scope.READ)
    pool: asyncpg.Pool = request.state.reads
    async with pool.acquire() as connection:
        yield Reader(principal, connection)


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_writer(request: Request, credentials: BearerCredentials) -> AsyncIterator[Reader]:
    """A key with `roster:write` and one connection of the write pool, for local edits
    (overrides, groups, people); the endpoint opens the transaction."""
    principal = await authenticate(request, credentials)
    check_scope(request, principal, Scope.WRITE)
    pool: asyncpg.Pool = request.state.pool
    async with pool.acquire() as connection:
        yield Reader(principal, connection)


WriterDep = Annotated[Reader, Depends(get_writer)]


DistrictId = Annotated[str, Path(pattern=ID_PATTERN, description="A district's Clever id.")]
SchoolId = Annotated[str, Path(pattern=ID_PATTERN, description="A school's Clever id.")]
TermId = Annotated[str, Path(pattern=ID_PATTERN, description="A term's Clever id.")]
CourseId = Annotated[str, Path(pattern=ID_PATTERN, description="A course's Clever id.")]
SectionId = Annotated[str, Path(pattern=ID_PATTERN, description="A section's Clever id.")]
UserId = Annotated[str, Path(pattern=ID_PATTERN, description="A user's Clever id.")]

DistrictFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="Only records of this district.")
]
LineageFilter = Annotated[
    str | None,
    Query(
        pattern=ID_PATTERN,
        description="The sections of every record in this lineage (the chain of records"
        " Clever recreated with new ids that this one belongs to), not only of this one.",
    ),
]
IncludeInactive = Annotated[bool, Query(description="Also return records Clever no longer shares.")]


def scope_of(
    principal: Principal, *, include_inactive: bool = False, as_of: datetime | None = None
) -> Visibility:
    return Visibility(
        district_ids=principal.district_ids,
        include_inactive=include_inactive,
        sensitive=principal.sensitive,
        as_of=as_of,
    )


AS_OF_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
)


async def get_as_of(
    reader: ReaderDep,
    as_of: Annotated[
        str | None,
        Query(
            pattern=AS_OF_PATTERN,
            description="Answer as the mirror knew the records at this instant: an RFC 3339"
            " timestamp, or a date (its first instant, UTC). A record that did not exist then"
            " is 404; the future is 422.",
            examples=["2026-03-03T15:00:00Z"],
        ),
    ] = None,
) -> datetime | None:
    if as_of is None:
        return None
    try:
        # Python reads RFC 3339 but for a lower-case `z` and fractions beyond microseconds.
        text = as_of.upper().replace("Z", "+00:00")
        text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ProblemError(422, f"`as_of` {as_of!r} is not a date or RFC 3339 timestamp.") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    if instant > datetime.now(UTC):
        raise ProblemError(422, "`as_of` is in the future: history only tells the past.")
    kept = await changes.horizon(reader.connection)
    if kept.pruned_before is not None and instant < kept.pruned_before:
        raise ProblemError(
            422,
            f"`as_of` is before the history kept (from {kept.pruned_before.isoformat()}).",
        )
    return instant


AsOf = Annotated[datetime | None, Depends(get_as_of)]


def listing_of(
    principal: Principal,
    page: PageParams,
    filters: ListFilters,
    *,
    district_id: str | None = None,
) -> Listing:
    return Listing(
        scope=scope_of(principal, include_inactive=filters.include_inactive),
        limit=page.limit,
        after=page.after,
        updated_since=filters.updated_since,
        district_id=district_id,
    )


async def get_or_404(
    reader: Reader,
    kind: Kind,
    record_id: str,
    *,
    what: str,
    include_inactive: bool,
    as_of: datetime | None = None,
) -> JSONText:
    """One record of `kind` as JSON, or 404 when it does not exist or the key may not see it."""
    scope = scope_of(reader.principal, include_inactive=include_inactive, as_of=as_of)
    body = await get_record(reader.connection, kind, record_id, scope)
    if body is None:
        raise not_found(what, record_id)
    return object_response(body)


def not_found(what: str, record_id: str) -> ProblemError:
    """The same answer for an id that does not exist and one the key may not see."""
    return ProblemError(404, f"No {what} with id {record_id!r}.", title="Not found")
