"""Incremental sync of one district from Clever's events.

A full sync must always work from the Data API alone; events only make the mirror fresh
between full syncs, cheaply. The run, under the district's lock (held by the caller):

1. Reads the district's cursor: the newest event the mirror has applied.
2. Pages `/events?starting_after=<cursor>` oldest first. Each page is one batch: per record,
   its last event in the page decides (a `*.deleted` stages a deletion, a created or updated
   one the record as the event carries it), normalized exactly as a full sync normalizes.
   The batch is merged with the full sync's rules (`apply_batch(full=False)`) and the cursor
   moves to the page's last event. Every page of the run is applied in one transaction,
   with the run's end: a run that fails or is killed midway applies nothing (the next run
   reads the same events again), and a page applied twice changes nothing (unchanged
   content is skipped, an older `last_modified` never overwrites a newer one).
3. Becomes a full sync by itself, saying why in the run's `fallback_reason`, when there is no
   cursor yet, Clever no longer accepts it or has events off for the district, or the
   district's last successful sync is older than the events Clever keeps are to be trusted
   (`SYNC_EVENTS_MAX_AGE_DAYS`).

Events of other kinds (`resources.*`, anything unknown) are counted in the run and skipped.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from app.clever.client import CleverClient, Page
from app.clever.errors import CleverEventsUnavailable
from app.local.sensitive import hold_flag, settle_after_merge
from app.mirror import merge
from app.mirror.staging import DELETIONS, ENTITY_KINDS, Staging
from app.sync import cursors, normalize, runs
from app.sync.full import (
    COLLECTIONS,
    Batch,
    ProgressCallback,
    SyncOptions,
    SyncOutcome,
    fail_run,
    normalized_batch,
    read_ahead,
    run_full_sync,
    sensitive_enabled,
)
from app.sync.runs import RunStatus

logger = logging.getLogger(__name__)

ACTIONS = ("created", "updated", "deleted")
# Collections whose records an event may delete; a district is never deleted by one.
DELETABLE = frozenset(COLLECTIONS) - {"districts"}


async def run_incremental_sync(
    pool: asyncpg.Pool,
    client: CleverClient,
    district_id: str,
    run_id: uuid.UUID,
    options: SyncOptions,
    on_progress: ProgressCallback | None = None,
    *,
    final_attempt: bool = True,
) -> SyncOutcome:
    """Apply the district's new events as run `run_id` (already recorded as queued), or run
    a full sync instead when events cannot be trusted to bring the mirror up to date.

    The caller holds the district's lock (`app.sync.locks.district_lock`); `final_attempt`
    as in `run_full_sync` (a retry goes on after the last committed batch).
    """
    async with pool.acquire() as connection:
        cursor = await cursors.events_cursor(connection, district_id)
        last_success = await runs.last_success_at(connection, district_id)
    reason = _fallback_reason(cursor, last_success, options.events_max_age_days)
    if reason is None and cursor is not None:
        try:
            return await _apply_events(
                pool, client, district_id, run_id, options, cursor, on_progress, final_attempt
            )
        except CleverEventsUnavailable as exc:
            reason = str(exc)
    async with pool.acquire() as connection:
        await runs.fall_back_to_full(connection, run_id, reason or "no events cursor")
    logger.info(
        "incremental sync runs as a full sync",
        extra={"district_id": district_id, "run_id": str(run_id), "reason": reason},
    )
    return await run_full_sync(
        pool, client, district_id, run_id, options, on_progress, final_attempt=final_attempt
    )


def _fallback_reason(
    cursor: str | None, last_success: datetime | None, max_age_days: int
) -> str | None:
    if cursor is None:
        return "no events cursor: the district has no full sync with events yet"
    if last_success is None or datetime.now(UTC) - last_success > timedelta(days=max_age_days):
        return f"the last successful sync is older than {max_age_days} days"
    return None


async def _apply_events(
    pool: asyncpg.Pool,
    client: CleverClient,
    district_id: str,
    run_id: uuid.UUID,
    options: SyncOptions,
    cursor: str,
    on_progress: ProgressCallback | None,
    final_attempt: bool,
) -> SyncOutcome:
    """Page the events after `cursor`, one batch per page, all in one transaction that
    also ends the run. Progress is written beside it, on another connection, so it shows
    while the run goes on.

    Raises CleverEventsUnavailable (before anything is applied, when Clever refuses the
    cursor) for the caller to fall back on; any other failure fails the run.
    """
    # Temporary tables, emptied for every page at no file-sync cost: all of the run's
    # staging goes through the one connection below.
    staging = Staging(run_id, temporary=True)
    async with pool.acquire() as connection:
        await runs.fail_interrupted_runs(connection, district_id, run_id)
        await runs.start_run(connection, run_id)
        sensitive = await sensitive_enabled(connection, district_id, options)
    totals = _Totals()
    try:
        async with (
            pool.acquire() as connection,
            _staged(connection, staging),
            connection.transaction(),
        ):
            pages = 0
            # The next page is fetched and normalized while this one is merged.
            batches = _normalized(client.iter_events(starting_after=cursor), district_id, sensitive)
            async for page, batch in read_ahead(batches, size=1):
                pages += 1
                if page.last_id is not None:
                    await _apply_batch(
                        connection,
                        staging,
                        district_id,
                        run_id,
                        batch,
                        page.last_id,
                        totals,
                        sensitive,
                    )
                if on_progress is not None:
                    on_progress("events", pages, totals.events.total())
                async with pool.acquire() as beside:
                    await runs.record_progress(
                        beside,
                        run_id,
                        {"events": {"pages": pages, "records": totals.events.total()}},
                        client.request_count,
                    )
            await runs.finish_run(
                connection,
                run_id,
                RunStatus.SUCCEEDED,
                counts=totals.as_dict(),
                warnings_count=totals.warnings,
                clever_requests=client.request_count,
                clever_errors=client.error_counts,
                idle=not totals.events,
            )
        return SyncOutcome(
            run_id, RunStatus.SUCCEEDED, counts=totals.as_dict(), warnings=totals.warnings
        )
    except CleverEventsUnavailable:
        raise
    except Exception as exc:
        return await fail_run(
            pool,
            client,
            district_id,
            run_id,
            exc,
            mode="incremental",
            final_attempt=final_attempt,
        )


@asynccontextmanager
async def _staged(connection: asyncpg.Connection, staging: Staging) -> AsyncIterator[None]:
    """The run's temporary staging tables on `connection` for the block, dropped after it
    (a connection that broke takes them with it)."""
    await staging.create(connection)
    try:
        yield
    finally:
        with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await staging.drop(connection)


async def _normalized(
    pages: AsyncIterator[Page[Any]], district_id: str, sensitive: bool
) -> AsyncIterator[tuple[Page[Any], _EventBatch]]:
    """Each page of events (fetched ahead) with its staging rows and its events counted.

    Normalizing in a thread was tried: the GIL it holds slowed the merge's COPY and round
    trips as much as it saved.
    """
    async for page in read_ahead(pages):
        yield page, _event_batch(page, district_id, sensitive)


@dataclass
class _Totals:
    """What a run's batches applied, and its events by what became of them."""

    tables: dict[str, Counter[str]] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    warnings: int = 0

    def add(self, counts: merge.BatchCounts) -> None:
        self.warnings += counts.warnings_found
        for table, table_counts in counts.as_dict().items():
            self.tables.setdefault(table, Counter()).update(table_counts)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {table: dict(c) for table, c in self.tables.items()}
        result["events"] = dict(self.events)
        return result


async def _apply_batch(
    connection: asyncpg.Connection,
    staging: Staging,
    district_id: str,
    run_id: uuid.UUID,
    batch: _EventBatch,
    cursor: str,
    totals: _Totals,
    sensitive: bool,
) -> None:
    """Stage one page's records and deletions, then merge them and move the cursor (in the
    run's transaction). A page of events this sync skips only moves the cursor: nothing
    before them is left to read."""
    if batch.rows:
        await staging.empty(connection)
        for kind, rows in batch.rows:
            await staging.copy(connection, kind, rows)
        if batch.shares_referenced:
            for kind, rows in await _recheck_owners(connection, staging, district_id, sensitive):
                await staging.copy(connection, kind, rows)
    async with connection.transaction():
        if batch.rows:
            await hold_flag(connection, district_id)
            await merge.prepare(connection, staging, district_id, full=False)
            totals.add(
                await merge.apply_batch(connection, staging, district_id, run_id, full=False)
            )
            # `sensitive` is the district's flag, or the default when it has none yet.
            await settle_after_merge(
                connection, district_id, staged_with=sensitive, default=sensitive
            )
        totals.events.update(batch.events)
        await cursors.advance(connection, district_id, cursor)


# Records whose links the mirror skips while the record they point at is not shared:
# owner collection, and the warnings that mark such a skipped link.
_RECHECKED_OWNERS = (
    ("sections", ("unknown_student", "unknown_teacher")),
    ("users", ("unknown_student", "unknown_school")),
)


async def _recheck_owners(
    connection: asyncpg.Connection, staging: Staging, district_id: str, sensitive: bool
) -> Batch:
    """Records the batch neither carries nor deletes whose links were skipped for pointing
    at records not shared (an open `unknown_*` warning), restaged from their stored JSON: a
    user deleted and shared again gets back their enrollments and contacts in this batch,
    as a full sync would give them. Unchanged content writes nothing."""
    batch: Batch = []
    for collection, codes in _RECHECKED_OWNERS:
        rows = await connection.fetch(
            f"""
            SELECT t.id, t.content_hash, t.raw::text AS raw FROM {collection} t
            WHERE t.district_id = $1 AND t.deleted_at IS NULL
              AND EXISTS (
                  SELECT 1 FROM data_warnings w
                  WHERE w.district_id = $1 AND w.entity = '{collection}'
                    AND w.record_id = t.id AND w.resolved_at IS NULL AND w.code = ANY($2)
              )
              AND NOT EXISTS (SELECT 1 FROM {staging.table(collection)} s WHERE s.id = t.id)
              AND NOT EXISTS (
                  SELECT 1 FROM {staging.table("deletions")} d
                  WHERE d.entity = '{collection}' AND d.id = t.id
              )
            """,
            district_id,
            list(codes),
        )
        if not rows:
            continue
        restaged = normalized_batch(
            collection, [orjson.loads(row["raw"]) for row in rows], sensitive
        )
        # Stored JSON comes back with its keys reordered: keep the hash Clever's JSON gave,
        # so the unchanged record is not rewritten.
        kind = ENTITY_KINDS[collection]
        at_id, at_hash = kind.columns.index("id"), kind.columns.index("content_hash")
        hashes = {row["id"]: row["content_hash"] for row in rows}
        batch.extend(
            (
                staged_kind,
                [(*r[:at_hash], hashes.get(r[at_id], r[at_hash]), *r[at_hash + 1 :]) for r in rows_]
                if staged_kind is kind
                else rows_,
            )
            for staged_kind, rows_ in restaged
        )
    return _merged(batch)


@dataclass(frozen=True)
class _EventBatch:
    """A page of events made ready to stage."""

    rows: Batch
    # The page's events by what became of them: applied, skipped, invalid.
    events: Counter[str]
    # Users or schools created (or shared again): links of unchanged records that pointed
    # at them while they were not shared must be checked again.
    shares_referenced: bool


def _event_batch(page: Page[Any], district_id: str, sensitive: bool) -> _EventBatch:
    """The staging rows of a page of events, and its events counted by what became of them.

    Per record the page's last event wins, so a record deleted and created again in one page
    ends up live, and one updated then deleted ends up deleted.
    """
    events: Counter[str] = Counter()
    latest: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for raw in page.raw_records:
        collection, _, action = str(raw.get("type") or "").rpartition(".")
        data = raw.get("data")
        record = data.get("object") if isinstance(data, dict) else None
        record_id = record.get("id") if isinstance(record, dict) else None
        if collection not in COLLECTIONS or action not in ACTIONS:
            events["skipped"] += 1
            continue
        if not isinstance(record, dict) or not normalize.is_record_id(record_id):
            events["invalid"] += 1
            continue
        if collection == "districts" and (record_id != district_id or action == "deleted"):
            events["skipped"] += 1
            continue
        events["applied"] += 1
        latest[(collection, record_id)] = (action, record)
    if unreadable := page.entry_count - len(page.raw_records):
        events["invalid"] += unreadable

    batch: Batch = []
    deletions: list[tuple[Any, ...]] = []
    for collection in COLLECTIONS:
        kept: list[dict[str, Any]] = []
        for (event_collection, record_id), (action, record) in latest.items():
            if event_collection != collection:
                continue
            if action == "deleted":
                if collection in DELETABLE:
                    deletions.append((collection, record_id))
            else:
                kept.append(record)
        if kept:
            batch.extend(normalized_batch(collection, kept, sensitive))
    if deletions:
        batch.append((DELETIONS, deletions))
    shares = any(
        action == "created" and collection in ("users", "schools")
        for (collection, _), (action, _) in latest.items()
    )
    return _EventBatch(_merged(batch), events, shares)


def _merged(batch: Batch) -> Batch:
    """One entry per staging table (the warnings of several collections share one)."""
    rows: dict[str, tuple[Any, list[tuple[Any, ...]]]] = {}
    for kind, kind_rows in batch:
        rows.setdefault(kind.name, (kind, []))[1].extend(kind_rows)
    return [(kind, collected) for kind, collected in rows.values() if collected]
