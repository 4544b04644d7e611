"""The audit trail of key use: the only writer of `audit_events`.

Each request that presents an API key (or fails to) is one event: the key, the route's path
template, the method, the status and the time; for a failed authentication also the
client's address. Nothing of the query, the body or the presented secret is kept, so the
trail holds no student data and no credential.

The API does not write an event per request: `AuditLog` buffers them and copies them in one
statement every second, so a busy key costs nothing measurable. Events of the last second
before a crash are lost; a Postgres outage keeps up to `MAX_BUFFERED` events in memory and
drops the oldest beyond (counted in `roster_audit_events_dropped_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter

from app.mirror.queries.sql import Params, where

logger = logging.getLogger(__name__)

MAX_BUFFERED = 100_000
FLUSH_SECONDS = 1.0
_COLUMNS = ("at", "key_id", "method", "route", "status", "client")

AUDIT_DROPPED = Counter(
    "roster_audit_events_dropped_total",
    "Audit events dropped because Postgres could not take them in time.",
)


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    key_id: uuid.UUID | None
    method: str
    route: str
    status: int
    # Only for failed authentications.
    client: str | None = None


class AuditLog:
    """Collects events in memory and writes them in batches from one background task."""

    def __init__(self, pool: asyncpg.Pool, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._pool = pool
        self._flush_seconds = flush_seconds
        self._pending: deque[AuditEvent] = deque()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: AuditEvent) -> None:
        if len(self._pending) >= MAX_BUFFERED:
            self._pending.popleft()
            AUDIT_DROPPED.inc()
        self._pending.append(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-flush")

    async def stop(self) -> None:
        """Stop the background task and write what is left (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Write the buffered events; on failure they stay buffered for the next try."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        try:
            async with self._pool.acquire() as connection:
                await connection.copy_records_to_table(
                    "audit_events",
                    records=[
                        (e.at, e.key_id, e.method, e.route, e.status, e.client) for e in batch
                    ],
                    columns=_COLUMNS,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning(
                "audit events not written yet",
                extra={"pending": len(batch), "error": type(error).__name__},
            )
            return 0
        for _ in batch:
            self._pending.popleft()
        return len(batch)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()


def now() -> datetime:
    return datetime.now(UTC)


async def prune(connection: asyncpg.Connection, *, retention_days: int) -> int:
    """Delete events older than `retention_days`; how many went."""
    status = await connection.execute(
        "DELETE FROM audit_events WHERE at < now() - make_interval(days => $1)", retention_days
    )
    return int(status.split()[-1])


async def read(
    connection: asyncpg.Connection,
    *,
    district_ids: list[str] | None,
    key_id: uuid.UUID | None,
    status: int | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Events newest first. A reader limited to `district_ids` sees only the use of keys
    limited to some of those districts, and no failed authentications."""
    params, conditions = Params(), []
    if district_ids is not None:
        conditions.append(f"k.district_ids <@ {params.add(district_ids)}::text[]")
    if key_id is not None:
        conditions.append(f"e.key_id = {params.add(key_id)}")
    if status is not None:
        conditions.append(f"e.status = {params.add(status)}")
    if since is not None:
        conditions.append(f"e.at >= {params.add(since)}")
    if before_id is not None:
        conditions.append(f"e.id < {params.add(before_id)}")
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT e.id, e.at, e.key_id, k.name AS key_name, e.method, e.route, e.status, e.client"
        " FROM audit_events e LEFT JOIN api_keys k ON k.id = e.key_id"
        f" {where(conditions)} ORDER BY e.id DESC LIMIT {params.add(limit)}",
        *params.values,
    )
    return rows
