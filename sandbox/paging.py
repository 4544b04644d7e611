"""Clever-style cursor paging over a collection made of ordered id segments.

A collection is a list of segments whose ids ascend from one segment to the next (generated
students, generated teachers, ..., then created records). Cursors are record ids: a page
holds the live records with ids after `starting_after` (or just before `ending_before`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Protocol

Record = dict[str, Any]


class Segment(Protocol):
    """A run of ascending ids, some of which may be deleted."""

    def __len__(self) -> int: ...

    def id_at(self, position: int) -> str:
        """The id at a position."""
        ...

    def count_through(self, cursor: str) -> int:
        """How many ids are <= `cursor`."""
        ...

    def count_before(self, cursor: str) -> int:
        """How many ids are < `cursor`."""
        ...

    def live(self, position: int) -> bool:
        """Whether the record at a position is served."""
        ...

    def record(self, position: int, v31: bool) -> Record:
        """The record at a position as served."""
        ...


class IdView(Sequence[str]):
    """A segment's ids as a sequence, so `bisect` can search them without materializing."""

    def __init__(self, segment: Segment) -> None:
        self._segment = segment

    def __len__(self) -> int:
        return len(self._segment)

    def __getitem__(self, position: Any) -> Any:
        return self._segment.id_at(position)


def ids_through(segment: Segment, cursor: str) -> int:
    """`count_through` by binary search, for segments without a faster way."""
    return bisect_right(IdView(segment), cursor)


def ids_before(segment: Segment, cursor: str) -> int:
    """`count_before` by binary search."""
    return bisect_left(IdView(segment), cursor)


def page_after(
    segments: Sequence[Segment], cursor: str | None, limit: int, v31: bool
) -> tuple[list[Record], bool]:
    """Live records after `cursor` (from the start when None), and whether the page is full."""
    records: list[Record] = []
    for segment in segments:
        size = len(segment)
        position = 0 if cursor is None else segment.count_through(cursor)
        while position < size and len(records) < limit:
            if segment.live(position):
                records.append(segment.record(position, v31))
            position += 1
        if len(records) >= limit:
            break
    return records, len(records) >= limit


def page_before(
    segments: Sequence[Segment], cursor: str | None, limit: int, v31: bool
) -> tuple[list[Record], bool]:
    """The last `limit` live records before `cursor` (the very end when None), ascending."""
    records: list[Record] = []
    for segment in reversed(segments):
        position = len(segment) if cursor is None else segment.count_before(cursor)
        while position > 0 and len(records) < limit:
            position -= 1
            if segment.live(position):
                records.append(segment.record(position, v31))
        if len(records) >= limit:
            break
    records.reverse()
    return records, len(records) >= limit


def page(
    segments: Sequence[Segment],
    *,
    starting_after: str | None = None,
    ending_before: str | None = None,
    limit: int = 100,
    v31: bool = True,
) -> tuple[list[Record], bool]:
    """One Clever page: before `ending_before` when given (`"last"`: the very end), else
    after `starting_after`; and whether it is full (so more may follow)."""
    if ending_before is not None:
        cursor = None if ending_before == "last" else ending_before
        return page_before(segments, cursor, limit, v31)
    return page_after(segments, starting_after, limit, v31)
