"""Sync runs: asking for a sync, watching runs, deciding held ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from arq.connections import ArqRedis
from fastapi import APIRouter, Path, Query, Request, Response

from app.api.auth import AUTH_RESPONSES, Principal, ReadAccess, SyncAccess
from app.api.deps import DistrictFilter, ReaderDep, not_found
from app.api.pagination import DEFAULT_LIMIT, Limit
from app.api.problems import Problem, ProblemError, not_found_responses
from app.api.schemas import Page
from app.api.sync_schemas import (
    SYNC_RUN_COLUMNS,
    SyncRequestBody,
    SyncRun,
)
from app.api.webhook import (
    DELIVERY_PENDING,
    SyncCallerDep,
    claim_delivery,
    forget_delivery,
    record_delivery,
)
from app.clever.errors import CleverError
from app.mirror.queries.sql import Params, where
from app.sync.full import SyncError, SyncOptions, decide_held_run
from app.sync.queue import (
    DistrictBusyError,
    RunNotHeldError,
    approval_pending,
    request_approval,
    request_sync,
)
from app.sync.runs import RunStatus
from app.sync.tokens import DistrictTokens, UnknownDistrictError

router = APIRouter(prefix="/v1", tags=["sync"], responses=AUTH_RESPONSES)

RUN_NOT_FOUND = not_found_responses("sync run")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The run is not held, or the district is busy."}
}

RunId = Annotated[uuid.UUID, Path(description="A sync run's id (a UUID).")]


SYNC_CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SyncRun,
        "description": "A sync of the district was already queued or running (or this "
        "webhook delivery was seen before): that run.",
    },
    202: {"description": "A new run was queued."},
    401: {
        "model": Problem,
        "description": "Neither a valid API key nor a valid, fresh webhook signature.",
    },
    **not_found_responses("district"),
    409: {
        "model": Problem,
        "description": "An approved held run of the district is being applied, or this "
        "webhook delivery is still being handled; try again shortly.",
    },
    408: {"model": Problem, "description": "The body took too long to arrive."},
    413: {
        "model": Problem,
        "description": "The body is larger than the service accepts (API_MAX_BODY_BYTES); "
        "refused before the key or signature is checked.",
    },
    503: {"model": Problem, "description": "Clever could not be asked about the district."},
}

# Webhook senders are configured with a URL once: `POST /sync` stays where it is whatever
# version the API is at, and takes and answers exactly what `POST /v1/sync` does.
webhook_router = APIRouter(tags=["sync"], responses=AUTH_RESPONSES)


@webhook_router.post(
    "/sync",
    name="sync-create-webhook",
    summary="Sync a district (webhook)",
    status_code=202,
    response_model=SyncRun,
    responses=SYNC_CREATE_RESPONSES,
    openapi_extra={"security": [{}]},
)
@router.post(
    "/sync",
    name="sync-create",
    summary="Sync a district",
    status_code=202,
    response_model=SyncRun,
    responses=SYNC_CREATE_RESPONSES,
    # A key, or no key at all when the webhook headers sign the request.
    openapi_extra={"security": [{}]},
)
async def create_sync(
    body: SyncRequestBody, caller: SyncCallerDep, request: Request, response: Response
) -> SyncRun:
    """Sync a district: queue a run, or join the one already queued or running.

    Needs a key with `sync:write`, or a signed webhook (`X-Roster-Timestamp` and
    `X-Roster-Signature` instead of a key). Answers `202` with a new run, or `200` with the
    district's run that is already queued or running: concurrent requests share one run.
    Follow it with `GET /v1/sync/runs/{run_id}`.

    The district must be mirrored already, or served by one of the service's Clever tokens
    (its first sync); any other id is 404, as is a district the key may not see. A run
    already queued or running is joined whatever its mode. A webhook delivery sent again
    (same signature) starts nothing: it is answered `200` with the run its first delivery
    got.
    """
    pool: asyncpg.Pool = request.state.pool
    redis: ArqRedis = request.state.redis
    if not caller.sees(body.district_id):
        raise not_found("district", body.district_id)
    await _check_syncable(pool, request.state.tokens, body.district_id)

    if caller.delivery is not None:
        first = await claim_delivery(redis, caller.delivery)
        if first == DELIVERY_PENDING:
            raise ProblemError(409, "This webhook delivery is already being handled.")
        if first is not None:
            response.status_code = 200
            return await _run_or_404(pool, uuid.UUID(first), None)
    try:
        requested = await request_sync(
            redis, pool, body.district_id, mode=body.mode, trigger=caller.trigger
        )
    except DistrictBusyError as exc:
        if caller.delivery is not None:
            await forget_delivery(redis, caller.delivery)
        raise ProblemError(409, f"{exc}.", headers={"Retry-After": "5"}) from None
    except Exception:
        if caller.delivery is not None:
            await forget_delivery(redis, caller.delivery)
        raise
    if caller.delivery is not None:
        await record_delivery(redis, caller.delivery, requested.run_id)
    response.status_code = 202 if requested.queued else 200
    return await _run_or_404(pool, requested.run_id, None)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RunCursor = Annotated[
    str | None,
    Query(
        pattern=r"^\d{1,16}-[0-9a-f]{32}$",
        description="`next_cursor` of the previous page.",
    ),
]


@router.get(
    "/sync/runs", name="sync-runs-list", summary="List sync runs", response_model=Page[SyncRun]
)
async def list_runs(
    reader: ReaderDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: RunCursor = None,
    district_id: DistrictFilter = None,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
    include_idle: Annotated[
        bool,
        Query(description="Also list idle polls: incremental runs that found no new events."),
    ] = False,
) -> Page[SyncRun]:
    """Sync runs of the districts the key may see, newest first (idle polls left out unless
    `include_idle=true`)."""
    params, conditions = Params(), []
    if not include_idle:
        conditions.append("NOT idle")
    if reader.principal.district_ids is not None:
        conditions.append(f"district_id = ANY({params.add(reader.principal.district_ids)}::text[])")
    if district_id is not None:
        conditions.append(f"district_id = {params.add(district_id)}")
    if status is not None:
        conditions.append(f"status = {params.add(status.value)}")
    if cursor is not None:
        created_at, run_id = _run_position(cursor)
        conditions.append(f"(created_at, id) < ({params.add(created_at)}, {params.add(run_id)})")
    records = await reader.connection.fetch(
        f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs {where(conditions)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {params.add(limit + 1)}",
        *params.values,
    )
    shown = [_run(record) for record in records[:limit]]
    more = len(records) > limit
    return Page[SyncRun](data=shown, next_cursor=_run_cursor(shown[-1]) if more else None)


@router.get(
    "/sync/runs/{run_id}",
    name="sync-runs-get",
    summary="Get a sync run",
    response_model=SyncRun,
    responses=RUN_NOT_FOUND,
)
async def get_run(run_id: RunId, principal: ReadAccess, request: Request) -> SyncRun:
    """One sync run, with its progress while it runs and its counts once it ended."""
    return await _run_or_404(request.state.pool, run_id, principal)


@router.post(
    "/sync/runs/{run_id}/approve",
    name="sync-runs-approve",
    summary="Approve a held sync run",
    status_code=202,
    response_model=SyncRun,
    responses={**RUN_NOT_FOUND, **CONFLICT},
)
async def approve_run(run_id: RunId, principal: SyncAccess, request: Request) -> SyncRun:
    """Apply a run the mass-change guard held: its changes, deactivations included, are
    merged by the worker. Answers `202` with the run, still `held` (with `decided_by`) until
    the worker has applied it; it then becomes `succeeded`.

    409 when the run is not held, or while a sync of its district is queued or running (a
    newer sync replaces a held run). Approving again while the approval is pending is
    harmless. Needs `sync:write`.
    """
    pool: asyncpg.Pool = request.state.pool
    await _run_or_404(pool, run_id, principal)
    try:
        await request_approval(request.state.redis, pool, run_id, decided_by=principal.name)
    except RunNotHeldError as exc:
        raise _not_held(run_id, exc.status) from None
    except DistrictBusyError as exc:
        raise ProblemError(409, f"{exc}.", headers={"Retry-After": "5"}) from None
    return await _run_or_404(pool, run_id, principal)


@router.post(
    "/sync/runs/{run_id}/reject",
    name="sync-runs-reject",
    summary="Reject a held sync run",
    response_model=SyncRun,
    responses={**RUN_NOT_FOUND, **CONFLICT},
)
async def reject_run(run_id: RunId, principal: SyncAccess, request: Request) -> SyncRun:
    """Discard a run the mass-change guard held: nothing of it is applied, and it ends
    `rejected`. 409 when the run is not held, or its approval is already being applied.
    Needs `sync:write`.
    """
    pool: asyncpg.Pool = request.state.pool
    run = await _run_or_404(pool, run_id, principal)
    if run.status != RunStatus.HELD:
        raise _not_held(run_id, run.status)
    if await approval_pending(request.state.redis, run_id, run.district_id):
        raise ProblemError(409, f"Sync run {run_id} was approved; it is being applied.")
    options = SyncOptions.from_settings(request.state.settings)
    try:
        await decide_held_run(
            pool, run_id, approve=False, decided_by=principal.name, options=options
        )
    except SyncError as exc:
        raise ProblemError(409, f"{exc}.") from None
    return await _run_or_404(pool, run_id, principal)


async def _check_syncable(pool: asyncpg.Pool, tokens: DistrictTokens, district_id: str) -> None:
    """404 unless the district is mirrored or one of the service's Clever tokens serves it.

    Only an id not mirrored yet asks Clever which districts the tokens serve, and then at
    most every few minutes (`DistrictTokens` remembers the answer).
    """
    async with pool.acquire() as connection:
        if await connection.fetchval("SELECT 1 FROM districts WHERE id = $1", district_id):
            return
    try:
        await tokens.token_for(district_id)
    except UnknownDistrictError:
        raise not_found("district", district_id) from None
    except CleverError as exc:
        raise ProblemError(
            503, f"Clever could not be asked which districts it serves: {exc}."
        ) from None


async def _run_or_404(
    pool: asyncpg.Pool, run_id: uuid.UUID, principal: Principal | None
) -> SyncRun:
    """The run, if it exists and `principal` (None: anyone) may see its district."""
    async with pool.acquire() as connection:
        record = await connection.fetchrow(
            f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE id = $1", run_id
        )
    if record is None or (principal is not None and not principal.sees(record["district_id"])):
        raise not_found("sync run", str(run_id))
    return _run(record)


def _run(record: asyncpg.Record) -> SyncRun:
    return SyncRun.model_validate(dict(record))


def _not_held(run_id: uuid.UUID, status: str | None) -> ProblemError:
    return ProblemError(
        409,
        f"Sync run {run_id} is {status}: only held runs can be approved or rejected.",
        run_status=status,
    )


def _run_cursor(run: SyncRun) -> str:
    """`<microseconds since 1970 UTC>-<run id as hex>`: every string of this shape is a
    position in the runs' order (newest first)."""
    return f"{(run.created_at - _EPOCH) // timedelta(microseconds=1)}-{run.id.hex}"


def _run_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a runs cursor points after."""
    micros, _, run_id = cursor.partition("-")
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=run_id)
