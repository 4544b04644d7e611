"""The district's event log: what `/events` serves, in ascending id order.

Events from single changes keep a snapshot of the object. Bulk changes (a term roll-over
touching every section, a mass unshare) would need one snapshot per record, so they are kept
as a batch of generated-record indices and rendered when served, from the state the records
had at that change.
"""

from __future__ import annotations

import datetime as dt
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]
# Renders (object, previous_attributes) of item `k` of a lazy batch.
LazyRender = Callable[[int], tuple[Record, Record | None]]


@dataclass(slots=True)
class EventBatch:
    """Consecutive events of one type: snapshots, or a lazily rendered bulk change."""

    first_seq: int
    type: str
    created: str
    objects: list[Record] = field(default_factory=list)
    previous: list[Record | None] = field(default_factory=list)
    lazy_indices: array[int] | None = None
    lazy_render: LazyRender | None = None

    @property
    def record_type(self) -> str:
        """The collection the events are about (`users`, `sections`, ...)."""
        return self.type.partition(".")[0]

    def __len__(self) -> int:
        if self.lazy_indices is not None:
            return len(self.lazy_indices)
        return len(self.objects)

    def item(self, offset: int) -> tuple[Record, Record | None]:
        """The object and previous attributes of the batch's `offset`-th event."""
        if self.lazy_render is not None:
            return self.lazy_render(offset)
        return self.objects[offset], self.previous[offset]


class EventClock:
    """Wall-clock event timestamps that never go backwards."""

    def __init__(self) -> None:
        self._last = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)

    def now(self) -> str:
        """The next timestamp, ISO 8601 with milliseconds, as Clever writes them."""
        current = dt.datetime.now(dt.UTC)
        if current <= self._last:
            current = self._last + dt.timedelta(milliseconds=1)
        self._last = current
        return current.strftime("%Y-%m-%dT%H:%M:%S.") + f"{current.microsecond // 1000:03d}Z"


class EventLog:
    """Append-only event batches addressed by a global sequence number."""

    def __init__(self) -> None:
        self._batches: list[EventBatch] = []
        self._firsts: list[int] = []
        self.total = 0
        # Events below `floor` have passed Clever's retention and are no longer served.
        self.floor = 0
        self.clock = EventClock()

    def append(self, batch: EventBatch) -> range:
        """Add a batch; returns the sequence numbers it was given."""
        batch.first_seq = self.total
        if not len(batch):
            return range(self.total, self.total)
        self._batches.append(batch)
        self._firsts.append(batch.first_seq)
        self.total += len(batch)
        return range(batch.first_seq, self.total)

    def snapshot(self, event_type: str, obj: Record, previous: Record | None = None) -> int:
        """Record one event with a copy of its object; returns its sequence number."""
        batch = EventBatch(0, event_type, self.clock.now(), [obj], [previous])
        return self.append(batch).start

    def locate(self, seq: int) -> tuple[EventBatch, int]:
        """The batch holding event `seq` and its offset in it."""
        position = bisect_right(self._firsts, seq) - 1
        batch = self._batches[position]
        return batch, seq - batch.first_seq

    def record_type(self, seq: int) -> str:
        """The record type of event `seq`."""
        return self.locate(seq)[0].record_type

    def render(self, seq: int, event_id: str) -> Record:
        """Event `seq` in Clever's shape (objects in their v3.1 form)."""
        batch, offset = self.locate(seq)
        obj, previous = batch.item(offset)
        data: Record = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        return {"id": event_id, "type": batch.type, "created": batch.created, "data": data}
