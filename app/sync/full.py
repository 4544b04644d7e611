"""Full sync of one district: fetch every collection, stage it, apply it atomically.

The phases:

1. The caller (`app.sync.service`) holds the district's lock (a Postgres advisory lock held
   by one connection for the whole run); without it the run is `coalesced` into the one
   that holds it.
2. Note Clever's newest event id, so incremental syncs continue from it afterwards.
3. Read each district-level collection page by page (the next page is fetched while the
   current one is normalized and copied), normalize every record, and `COPY` rows, links and
   warnings into this run's staging tables. Nothing of the district is held in memory.
4. In one transaction: compute what is absent (deleted), check the mass-change guard, merge.
   A run that would deactivate too much ends `held` with its staging kept for approval.

A run killed anywhere before the commit leaves the live tables as they were; the next run
drops the leftover staging tables and starts over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import asyncpg

from app.clever.client import CleverClient, Page
from app.clever.errors import CleverEventsUnavailable
from app.local.sensitive import hold_flag, settle_after_merge
from app.mirror import merge
from app.mirror.queries.shapes import district_paused
from app.mirror.staging import (
    ENTITY_KINDS,
    LINK_KINDS,
    WARNINGS,
    StageKind,
    Staging,
    drop_stale,
)
from app.sync import cursors, normalize, runs
from app.sync.locks import district_lock
from app.sync.runs import RunStatus

logger = logging.getLogger(__name__)

# Collections in the order they are read and merged.
COLLECTIONS = ("districts", "schools", "terms", "courses", "users", "sections")

# Pages read ahead of the one being copied: enough to overlap the network with COPY,
# few enough that memory does not grow with the district.
PAGES_AHEAD = 2
PROGRESS_INTERVAL_SECONDS = 1.0

ProgressCallback = Callable[[str, int, int], None]
"""Called after each page with (collection, pages read, records read)."""


class SyncError(Exception):
    """A sync could not complete; the message says why (never with a token in it)."""


@dataclass(frozen=True)
class SyncOptions:
    max_deactivate_ratio: float = 0.25
    sensitive_fields_enabled: bool = False
    # An incremental run after a longer pause runs as a full sync.
    events_max_age_days: int = 25

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncOptions:
        return cls(
            max_deactivate_ratio=settings.sync_max_deactivate_ratio,
            sensitive_fields_enabled=settings.sensitive_fields_enabled,
            events_max_age_days=settings.sync_events_max_age_days,
        )


@dataclass
class SyncOutcome:
    run_id: uuid.UUID
    status: RunStatus
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: int = 0
    error: str | None = None
    held_reason: str | None = None


async def coalesce(pool: asyncpg.Pool, run_id: uuid.UUID) -> SyncOutcome:
    """End a run that found another sync of its district holding the lock."""
    async with pool.acquire() as connection:
        await runs.finish_run(
            connection,
            run_id,
            RunStatus.COALESCED,
            error="another sync of this district was running",
        )
    return SyncOutcome(run_id, RunStatus.COALESCED)


async def run_full_sync(
    pool: asyncpg.Pool,
    client: CleverClient,
    district_id: str,
    run_id: uuid.UUID,
    options: SyncOptions,
    on_progress: ProgressCallback | None = None,
    *,
    final_attempt: bool = True,
) -> SyncOutcome:
    """Run a full sync for `district_id` as run `run_id` (already recorded as queued).

    The caller holds the district's lock (`app.sync.locks.district_lock`). Unless this is
    the `final_attempt`, a lost database connection raises DatabaseConnectionLost (see
    `fail_run`) so the caller can run it again.
    """
    staging = Staging(run_id)
    async with pool.acquire() as connection:
        await runs.fail_interrupted_runs(connection, district_id, run_id)
        await _discard_superseded(connection, district_id, run_id)
        await runs.start_run(connection, run_id)
        sensitive = await sensitive_enabled(connection, district_id, options)
    try:
        async with pool.acquire() as connection:
            await runs.record_events_cursor(connection, run_id, await _newest_event_id(client))
            await staging.create(connection)
            await _fetch_into_staging(
                pool, connection, client, staging, district_id, run_id, sensitive, on_progress
            )
            outcome = await _apply(
                connection, staging, district_id, run_id, options, client, staged_with=sensitive
            )
            if outcome.status is RunStatus.HELD:
                await runs.finish_run(
                    connection,
                    run_id,
                    RunStatus.HELD,
                    clever_requests=client.request_count,
                    clever_errors=client.error_counts,
                    held_reason=outcome.held_reason,
                )
            else:
                await staging.drop(connection)
            if _changed_much(outcome):
                await merge.analyze_live(connection)
            return outcome
    except Exception as exc:
        try:
            return await fail_run(
                pool, client, district_id, run_id, exc, mode="full", final_attempt=final_attempt
            )
        finally:
            # Best effort: the next sync drops whatever a dead run left behind.
            with suppress(Exception):
                async with pool.acquire() as connection:
                    await staging.drop(connection)


async def fail_run(
    pool: asyncpg.Pool,
    client: CleverClient,
    district_id: str,
    run_id: uuid.UUID,
    exc: Exception,
    *,
    mode: str,
    final_attempt: bool = True,
) -> SyncOutcome:
    """Record that a run failed, with the cause in words (never a token).

    A lost database connection on an attempt that is not the last raises
    DatabaseConnectionLost instead, leaving the run running for the caller to retry.
    """
    message = describe(exc)
    if is_connection_lost(exc):
        # Other pooled connections were likely ended too: open fresh ones.
        await pool.expire_connections()
        if not final_attempt:
            raise DatabaseConnectionLost(message) from exc
    async with pool.acquire() as connection:
        if not await runs.finish_run(
            connection,
            run_id,
            RunStatus.FAILED,
            error=message,
            clever_requests=client.request_count,
            clever_errors=client.error_counts,
        ):
            # The run's merge committed and recorded its end before this went wrong.
            run = await runs.get_run(connection, run_id)
            assert run is not None
            logger.warning(
                f"{mode} sync: tidying up after the run ended failed",
                extra={"district_id": district_id, "run_id": str(run_id), "error": message},
            )
            return SyncOutcome(run_id, RunStatus(run["status"]), counts=run["counts"] or {})
    logger.warning(
        f"{mode} sync failed",
        extra={"district_id": district_id, "run_id": str(run_id), "error": message},
    )
    return SyncOutcome(run_id, RunStatus.FAILED, error=message)


def _changed_much(outcome: SyncOutcome) -> bool:
    """Whether the run wrote enough rows for the live tables' statistics to be stale."""
    written = sum(
        counts.get("created", 0) + counts.get("deactivated", 0)
        for counts in outcome.counts.values()
    )
    unchanged = sum(counts.get("unchanged", 0) for counts in outcome.counts.values())
    return written > 1000 and written > unchanged // 10


# Errors of a database connection the server ended or that broke: the run may be retried.
LOST_CONNECTION = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # terminated by an administrator, shutdown
    ConnectionError,
)
# What asyncpg says when a connection it already lost is used again.
_CLOSED_CONNECTION_MESSAGES = ("released back to the pool", "connection is closed")
# What it says when the server's "terminating connection" reached an idle connection: the
# protocol is still consuming that error (state 2) when the next statement comes.
_ERROR_CONSUMING = "another operation (2) is in progress"


class DatabaseConnectionLost(SyncError):
    """The run's database connection was lost; the run is left running for a retry."""


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def root_cause(exc: BaseException) -> BaseException:
    """The error behind `exc`: asyncpg errors raised while cleaning up after a connection
    the server terminated ("the underlying connection is closed", "another operation is in
    progress") hide the termination itself in their context."""
    chain = _chain(exc)
    lost = [error for error in chain if isinstance(error, LOST_CONNECTION)]
    if lost:
        return lost[0]
    root = exc
    for error in chain[1:]:
        if not isinstance(root, asyncpg.InterfaceError):
            break
        root = error
    return root


def _used_after_loss(exc: BaseException) -> bool:
    return any(
        (
            isinstance(error, asyncpg.InterfaceError)
            and any(message in str(error) for message in _CLOSED_CONNECTION_MESSAGES)
        )
        or (isinstance(error, asyncpg.InternalClientError) and _ERROR_CONSUMING in str(error))
        for error in _chain(exc)
    )


def is_connection_lost(exc: BaseException) -> bool:
    return isinstance(root_cause(exc), LOST_CONNECTION) or _used_after_loss(exc)


def describe(exc: BaseException) -> str:
    """A run's error in words: the real cause, never a token."""
    if isinstance(exc, SyncError):
        return str(exc)
    root = root_cause(exc)
    text = f"{type(root).__name__}: {str(root) or type(root).__name__}"
    if isinstance(root, LOST_CONNECTION):
        return f"database connection lost ({text})"
    if _used_after_loss(exc):
        # asyncpg dropped the connection when the server ended it; the error that said so
        # went to whichever statement was waiting then.
        return (
            "database connection lost: the server closed it (terminated, restarted or failed over)"
        )
    return text


async def _discard_superseded(
    connection: asyncpg.Connection, district_id: str, run_id: uuid.UUID
) -> None:
    """A new full sync replaces a held one; leftovers of dead runs are dropped."""
    await runs.supersede_held(connection, district_id)
    keep = await connection.fetch(
        "SELECT id FROM sync_runs WHERE status IN ('held', 'running') AND district_id <> $1",
        district_id,
    )
    await drop_stale(connection, [row["id"] for row in keep])


async def sensitive_enabled(
    connection: asyncpg.Connection, district_id: str, options: SyncOptions
) -> bool:
    """The district's own flag when set, else the service-wide setting."""
    flag = await connection.fetchval(
        "SELECT sensitive_fields_enabled FROM districts WHERE id = $1", district_id
    )
    return bool(options.sensitive_fields_enabled if flag is None else flag)


async def _newest_event_id(client: CleverClient) -> str | None:
    try:
        return await client.latest_event_id()
    except CleverEventsUnavailable:
        return None


@dataclass
class _Progress:
    pages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    written_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"pages": self.pages.get(name, 0), "records": self.records.get(name, 0)}
            for name in self.pages
        }


async def _fetch_into_staging(
    pool: asyncpg.Pool,
    connection: asyncpg.Connection,
    client: CleverClient,
    staging: Staging,
    district_id: str,
    run_id: uuid.UUID,
    sensitive: bool,
    on_progress: ProgressCallback | None,
) -> None:
    """Read every collection into staging, page by page.

    Three things overlap: the next page is fetched, this page is normalized, and the
    previous page is copied into Postgres on a connection of its own.
    """
    progress = _Progress()
    async with pool.acquire() as copy_connection, _Copier(copy_connection, staging) as copier:
        for collection in COLLECTIONS:
            progress.pages[collection] = 0
            progress.records[collection] = 0
            async for page in read_ahead(client.iter_pages(collection)):
                if collection == "districts":
                    _check_district(page, district_id)
                known = await _known_digests(connection, collection, district_id, page)
                await copier.put(_normalize_page(collection, page, sensitive, known))
                progress.pages[collection] += 1
                progress.records[collection] += page.entry_count
                if on_progress is not None:
                    on_progress(
                        collection, progress.pages[collection], progress.records[collection]
                    )
                now = time.monotonic()
                if now - progress.written_at >= PROGRESS_INTERVAL_SECONDS:
                    progress.written_at = now
                    await runs.record_progress(
                        connection, run_id, progress.as_dict(), client.request_count
                    )
    await runs.record_progress(connection, run_id, progress.as_dict(), client.request_count)


Batch = list[tuple[StageKind, Sequence[tuple[Any, ...]]]]


class _Copier:
    """COPYs batches into staging in the background, one page behind the normalizer.

    Leaving the block waits for every batch to be copied, and raises a failed COPY's error.
    """

    def __init__(self, connection: asyncpg.Connection, staging: Staging) -> None:
        self._connection = connection
        self._staging = staging
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Copier:
        self._task = asyncio.create_task(self._run())
        return self

    async def put(self, batch: Batch) -> None:
        assert self._task is not None
        if self._task.done():
            await self._task  # raises the COPY's error
        await self._queue.put(batch)

    async def _run(self) -> None:
        while (batch := await self._queue.get()) is not None:
            for kind, rows in batch:
                await self._staging.copy(self._connection, kind, rows)

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        assert self._task is not None
        if exc_type is None and not self._task.done():
            await self._queue.put(None)
            await self._task
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if exc_type is None:
            await self._task


T = TypeVar("T")


@dataclass(frozen=True)
class _Failed:
    error: Exception


_DONE = object()


async def read_ahead(items: AsyncIterator[T], size: int = PAGES_AHEAD) -> AsyncIterator[T]:
    """Yield `items`, producing up to `size` further ones in the background: pages fetched,
    or batches normalized, while the consumer waits on Postgres. The producer's error is
    raised to the consumer when it reaches it."""
    queue: asyncio.Queue[T | _Failed | object] = asyncio.Queue(maxsize=size)

    async def produce() -> None:
        try:
            async for item in items:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(_Failed(exc))
            return
        await queue.put(_DONE)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)


def _check_district(page: Page[Any], district_id: str) -> None:
    ids = [str(raw.get("id")) for raw in page.raw_records if isinstance(raw, dict)]
    if district_id not in ids:
        raise SyncError(f"the token for district {district_id} serves {', '.join(ids) or 'none'}")


_NORMALIZERS: dict[str, Callable[..., normalize.Normalized]] = {
    "districts": normalize.normalize_district,
    "schools": normalize.normalize_school,
    "terms": normalize.normalize_term,
    "courses": normalize.normalize_course,
    "sections": normalize.normalize_section,
}


async def _known_digests(
    connection: asyncpg.Connection, collection: str, district_id: str, page: Page[Any]
) -> dict[str, bytes]:
    """Content hashes of the page's records the mirror holds active and complete.

    A record whose hash matches is skipped: not normalized, its links not restaged. Records
    with an open `unknown_*` or `foreign_reference` warning are left out so their links are
    checked again: what they referenced may have been shared (or moved) since.
    """
    ids = [raw["id"] for raw in page.raw_records if normalize.is_record_id(raw.get("id"))]
    if not ids or collection == "districts":  # one record, not worth a query
        return {}
    rows = await connection.fetch(
        f"""
        SELECT t.id, t.content_hash FROM {collection} t
        WHERE t.id BETWEEN $1 AND $2 AND t.district_id = $3 AND t.deleted_at IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM data_warnings w
              WHERE w.district_id = $3 AND w.entity = '{collection}' AND w.record_id = t.id
                AND w.resolved_at IS NULL
                AND (w.code LIKE 'unknown%' OR w.code = 'foreign_reference')
          )
        """,
        min(ids),
        max(ids),
        district_id,
    )
    return {row["id"]: row["content_hash"] for row in rows}


def _normalize_page(
    collection: str, page: Page[Any], sensitive: bool, known: dict[str, bytes]
) -> Batch:
    """One page's rows, links and warnings, per staging table.

    Records found unchanged in `known` are staged as id and hash only.
    """
    # Raw JSON, not parsed wire models: normalization reads any shape, and parsing a
    # district's worth of models would cost more than everything else here.
    raws = page.raw_records
    rows: list[tuple[Any, ...]] = []
    changed: list[dict[str, Any]] = []
    for raw in raws:
        record_id = raw.get("id")
        if isinstance(record_id, str) and (live := known.get(record_id)) is not None:
            digest = normalize.digest_of(collection, raw, sensitive_enabled=sensitive)
            if digest == live:
                rows.append(normalize.unchanged_row(collection, record_id, digest))
                continue
        changed.append(raw)
    return normalized_batch(
        collection, changed, sensitive, unreadable=page.entry_count - len(raws), rows=rows
    )


def normalized_batch(
    collection: str,
    raws: Sequence[dict[str, Any]],
    sensitive: bool,
    *,
    unreadable: int = 0,
    rows: list[tuple[Any, ...]] | None = None,
) -> Batch:
    """Rows, links and warnings of `raws` (records of one collection), per staging table.

    `unreadable` entries that were not objects are warned about; `rows` are rows already
    made (records staged as unchanged) to stage beside these.
    """
    rows = list(rows or [])
    if collection == "users":
        items = [normalize.normalize_user(raw, sensitive_enabled=sensitive) for raw in raws]
    else:
        normalizer = _NORMALIZERS[collection]
        items = [normalizer(raw) for raw in raws]
    items.extend([normalize.invalid_record(collection, "entry is not an object")] * unreadable)
    rows.extend(i.row for i in items if i.row is not None)
    batch: Batch = [(ENTITY_KINDS[collection], rows)]
    if collection == "users":
        batch.append((LINK_KINDS["user_schools"], [x for i in items for x in i.user_schools]))
        batch.append((LINK_KINDS["contact_relationships"], [x for i in items for x in i.contacts]))
    elif collection == "sections":
        batch.append(
            (LINK_KINDS["section_teachers"], [x for i in items for x in i.section_teachers])
        )
        batch.append((LINK_KINDS["enrollments"], [x for i in items for x in i.enrollments]))
    batch.append((WARNINGS, normalize.all_warnings(items)))
    return batch


async def _apply(
    connection: asyncpg.Connection,
    staging: Staging,
    district_id: str,
    run_id: uuid.UUID,
    options: SyncOptions,
    client: CleverClient | None = None,
    *,
    staged_with: bool,
    approved: bool = False,
) -> SyncOutcome:
    """Merge the staged district in one transaction, unless the guard holds it; the run's
    success is recorded in that transaction. `staged_with`: whether the batch was staged
    with sensitive fields."""
    try:
        async with connection.transaction():
            await hold_flag(connection, district_id)
            await merge.prepare(connection, staging, district_id, full=True)
            removals = await merge.deactivations(connection, staging, district_id)
            # A district Clever paused (for the summer) may well look empty: not a mistake.
            guarded = not approved and not await _staged_paused(connection, staging)
            if guarded and removals.exceeds(options.max_deactivate_ratio):
                # Leaving the block by exception rolls the transaction back: nothing applied.
                raise _Held(
                    f"would deactivate {removals.users} of {removals.active_users} users and "
                    f"{removals.sections} of {removals.active_sections} sections "
                    f"(limit {options.max_deactivate_ratio:.0%})"
                )
            counts = await merge.apply_batch(connection, staging, district_id, run_id, full=True)
            await settle_after_merge(
                connection,
                district_id,
                staged_with=staged_with,
                default=options.sensitive_fields_enabled,
            )
            await cursors.record_full_sync(connection, district_id, run_id)
            outcome = SyncOutcome(
                run_id, RunStatus.SUCCEEDED, counts=counts.as_dict(), warnings=counts.warnings_found
            )
            await runs.finish_run(
                connection,
                run_id,
                RunStatus.SUCCEEDED,
                counts=outcome.counts,
                warnings_count=outcome.warnings,
                clever_requests=client.request_count if client is not None else None,
                clever_errors=client.error_counts if client is not None else None,
            )
    except _Held as held:
        return SyncOutcome(run_id, RunStatus.HELD, held_reason=str(held))
    return outcome


async def _staged_paused(connection: asyncpg.Connection, staging: Staging) -> bool:
    """Whether the district record this run read says Clever has the district paused."""
    paused: bool | None = await connection.fetchval(
        f"SELECT {district_paused('d')} FROM {staging.table('districts')} d"
    )
    return bool(paused)


class _Held(Exception):
    """The mass-change guard stopped a batch."""


async def decide_held_run(
    pool: asyncpg.Pool,
    run_id: uuid.UUID,
    *,
    approve: bool,
    decided_by: str,
    options: SyncOptions,
) -> SyncOutcome:
    """Apply (approve) or discard (reject) a run the mass-change guard held."""
    async with pool.acquire() as connection:
        run = await runs.get_run(connection, run_id)
    if run is None:
        raise SyncError(f"no sync run {run_id}")
    if run["status"] != RunStatus.HELD:
        raise SyncError(f"sync run {run_id} is {run['status']}, not held")
    district_id: str = run["district_id"]
    staging = Staging(run_id)
    async with district_lock(pool, district_id) as acquired:
        if not acquired:
            raise SyncError(f"a sync of district {district_id} is running; try again later")
        async with pool.acquire() as connection:
            await runs.record_decision(connection, run_id, decided_by)
            if not approve:
                await runs.finish_run(
                    connection, run_id, RunStatus.REJECTED, error="rejected by " + decided_by
                )
                await staging.drop(connection)
                return SyncOutcome(run_id, RunStatus.REJECTED)
            # Whether the held batch was staged with sensitive fields is not kept: assume it
            # was, so a district disabled since keeps none.
            outcome = await _apply(
                connection, staging, district_id, run_id, options, approved=True, staged_with=True
            )
            await staging.drop(connection)
            return outcome
