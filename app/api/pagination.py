"""List conventions: `limit`, keyset cursors, and the page envelope.

A cursor is the last row's sort key, base64url-encoded (unpadded). Clients treat it as
opaque and pass `next_cursor` back unchanged, but its shape is declared (`CURSOR_PATTERN`)
and every string of that shape is a position: the page after that key. Nothing else is
accepted (422), so a cursor cannot make a query fail.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import Depends, Query
from pydantic import AfterValidator, BeforeValidator
from starlette.responses import Response

from app.api.problems import ProblemError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Unpadded base64url: groups of four characters, then two or three (never one).
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"


class JSONText(Response):
    """A response whose body is JSON already serialized (by Postgres)."""

    media_type = "application/json"


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor of `CURSOR_PATTERN`'s shape stands for. Bytes that are not UTF-8
    and NUL characters (which Postgres text cannot hold) can only be forged: they are
    replaced, and the key is still a place to start from."""
    if not re.fullmatch(CURSOR_PATTERN, cursor) or not cursor:
        raise invalid_cursor()
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def invalid_cursor() -> ProblemError:
    """The answer to a cursor of the wrong shape."""
    return ProblemError(
        422,
        "`cursor` is not a cursor this API returned; pass `next_cursor` back unchanged.",
        title="Invalid cursor",
    )


# The cursor of lists in the order of a bigint id: the last id shown, a number.
IdCursor = Annotated[
    int | None,
    Query(ge=0, le=2**63 - 1, description="`next_cursor` of the previous page."),
]

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT}).")
]


@dataclass(frozen=True)
class PageParams:
    """Where a page starts and how long it is; `after` is the decoded cursor."""

    limit: int
    after: str | None


async def page_params(
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=2048,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page.",
        ),
    ] = None,
) -> PageParams:
    return PageParams(limit, decode_cursor(cursor) if cursor is not None else None)


@dataclass(frozen=True)
class ListFilters:
    """Filters every collection takes."""

    include_inactive: bool
    updated_since: datetime | None


_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def iso_datetime(value: object) -> object:
    # Pydantic also reads a number, or a bare date, as a datetime; the parameter is
    # documented as an ISO 8601 date-time, and `updated_since=1700000000` is more likely a
    # client's mistake than a Unix time.
    if isinstance(value, str) and not _DATE_AND_TIME.match(value):
        raise ValueError("expected an ISO 8601 date-time such as 2024-08-01T00:00:00Z")
    return value


def in_utc(value: datetime) -> datetime:
    """`value` in UTC (naive values are taken as UTC); ValueError when UTC cannot hold it.

    Python and Postgres both stop at year 9999 here (asyncpg sends times in UTC), so
    `9999-12-31T23:59:59-01:00` or `0001-01-01T00:00:00+01:00` is invalid input, not a
    database error.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "the time is outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z"
        ) from None


async def list_filters(
    include_inactive: Annotated[
        bool, Query(description="Also return records Clever no longer shares.")
    ] = False,
    updated_since: Annotated[
        datetime | None,
        BeforeValidator(iso_datetime),
        AfterValidator(in_utc),
        Query(
            description="Only records the mirror changed at or after this time "
            "(ISO 8601; UTC when it has no offset; within years 1 to 9999 in UTC)."
        ),
    ] = None,
) -> ListFilters:
    return ListFilters(include_inactive, updated_since)


PageDep = Annotated[PageParams, Depends(page_params)]
FiltersDep = Annotated[ListFilters, Depends(list_filters)]


def page_body(rows: Sequence[tuple[str, str]], limit: int) -> bytes:
    """`{"data": [...], "next_cursor": ...}` from up to `limit + 1` rows of (key, JSON)."""
    more = len(rows) > limit
    shown = rows[:limit]
    next_cursor = encode_cursor(shown[-1][0]) if more else None
    body = ",".join(row[1] for row in shown)
    return f'{{"data":[{body}],"next_cursor":{orjson.dumps(next_cursor).decode()}}}'.encode()


def page_response(rows: Sequence[tuple[str, str]], limit: int) -> JSONText:
    return JSONText(page_body(rows, limit))


def object_response(body: str) -> JSONText:
    return JSONText(body.encode())
