"""Data warnings: what syncs found wrong in the districts' data, kept rather than refused."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query

from app.api.auth import AUTH_RESPONSES, Principal
from app.api.deps import DistrictFilter, ReaderDep
from app.api.pagination import DEFAULT_LIMIT, IdCursor, Limit
from app.api.schemas import Page
from app.api.sync_schemas import DataWarning, WarningCount, WarningSummary
from app.mirror.queries.sql import Params, where

router = APIRouter(prefix="/v1", tags=["data warnings"], responses=AUTH_RESPONSES)

Entity = Literal["districts", "schools", "terms", "courses", "users", "sections"]

_COLUMNS = (
    "id, district_id, entity, record_id, field, code, detail, first_seen_at, first_run_id,"
    " resolved_at IS NOT NULL AS resolved, resolved_at, resolved_run_id"
)


def _visible(principal: Principal, district_id: str | None) -> tuple[Params, list[str]]:
    params, conditions = Params(), []
    if principal.district_ids is not None:
        conditions.append(f"district_id = ANY({params.add(principal.district_ids)}::text[])")
    if district_id is not None:
        conditions.append(f"district_id = {params.add(district_id)}")
    return params, conditions


@router.get(
    "/data-warnings",
    name="data-warnings-list",
    summary="List data warnings",
    response_model=Page[DataWarning],
)
async def list_warnings(
    reader: ReaderDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: IdCursor = None,
    district_id: DistrictFilter = None,
    entity: Annotated[Entity | None, Query(description="Only warnings about this kind.")] = None,
    code: Annotated[
        str | None, Query(pattern=r"^[a-z0-9_]{1,64}$", description="Only this warning code.")
    ] = None,
    resolved: Annotated[
        bool | None,
        Query(description="`false`: only open warnings; `true`: only resolved ones."),
    ] = None,
) -> Page[DataWarning]:
    """Data warnings of the districts the key may see, oldest first (in id order)."""
    params, conditions = _visible(reader.principal, district_id)
    if entity is not None:
        conditions.append(f"entity = {params.add(entity)}")
    if code is not None:
        conditions.append(f"code = {params.add(code)}")
    if resolved is not None:
        conditions.append(f"(resolved_at IS NOT NULL) = {params.add(resolved)}")
    if cursor is not None:
        conditions.append(f"id > {params.add(cursor)}")
    records = await reader.connection.fetch(
        f"SELECT {_COLUMNS} FROM data_warnings {where(conditions)}"
        f" ORDER BY id LIMIT {params.add(limit + 1)}",
        *params.values,
    )
    shown = [DataWarning.model_validate(dict(record)) for record in records[:limit]]
    more = len(records) > limit
    return Page[DataWarning](data=shown, next_cursor=str(shown[-1].id) if more else None)


@router.get(
    "/data-warnings/summary",
    name="data-warnings-summary",
    summary="Count data warnings by code",
    response_model=WarningSummary,
)
async def summarize_warnings(
    reader: ReaderDep, district_id: DistrictFilter = None
) -> WarningSummary:
    """How many warnings of each code are open and how many were resolved, over the
    districts the key may see."""
    params, conditions = _visible(reader.principal, district_id)
    records: list[asyncpg.Record] = await reader.connection.fetch(
        "SELECT code, count(*) FILTER (WHERE resolved_at IS NULL) AS open,"
        " count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved"
        f" FROM data_warnings {where(conditions)} GROUP BY code ORDER BY code",
        *params.values,
    )
    return WarningSummary(data=[WarningCount.model_validate(dict(r)) for r in records])
