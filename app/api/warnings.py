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
from app.mirror.queries.warnings import WARNINGS_FROM

router = APIRouter(prefix="/v1", tags=["data warnings"], responses=AUTH_RESPONSES)

Entity = Literal["districts", "schools", "terms", "courses", "users", "sections"]

_COLUMNS = (
    "id, district_id, entity, record_id, field, code, detail, first_seen_at, first_run_id,"
    " resolved_at IS NOT NULL AS resolved, resolved_at, resolved_run_id"
)


Grouping = Literal["district", "entity", "school"]
# Each grouping's column of `WARNINGS_FROM`, named as in `WarningCount`, in output order.
_GROUPINGS: dict[str, tuple[str, str]] = {
    "district": ("w.district_id", "district_id"),
    "entity": ("w.entity", "entity"),
    "school": ("sc.id", "school_id"),
}


def _visible(
    principal: Principal, district_id: str | None, *, alias: str | None = None
) -> tuple[Params, list[str]]:
    column = f"{alias}.district_id" if alias else "district_id"
    params, conditions = Params(), []
    if principal.district_ids is not None:
        conditions.append(f"{column} = ANY({params.add(principal.district_ids)}::text[])")
    if district_id is not None:
        conditions.append(f"{column} = {params.add(district_id)}")
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
    reader: ReaderDep,
    district_id: DistrictFilter = None,
    by: Annotated[
        list[Grouping] | None,
        Query(
            description="Count per code and also per district, kind of record or school "
            "(repeat the parameter for several): `by=district&by=school`."
        ),
    ] = None,
) -> WarningSummary:
    """How many warnings of each code are open and how many were resolved, over the
    districts the key may see; with `by`, per district, kind or school too."""
    params, conditions = _visible(reader.principal, district_id, alias="w")
    groups = [("w.code", "code")]
    groups += [grouping for name, grouping in _GROUPINGS.items() if name in (by or ())]
    columns = ", ".join(f"{column} AS {name}" for column, name in groups)
    order = ", ".join(f"{column} NULLS LAST" for column, _ in groups)
    records: list[asyncpg.Record] = await reader.connection.fetch(
        f"SELECT {columns}, count(*) FILTER (WHERE w.resolved_at IS NULL) AS open,"
        " count(*) FILTER (WHERE w.resolved_at IS NOT NULL) AS resolved"
        f" {WARNINGS_FROM} {where(conditions)}"
        f" GROUP BY {', '.join(column for column, _ in groups)} ORDER BY {order}",
        *params.values,
    )
    return WarningSummary(data=[WarningCount.model_validate(dict(r)) for r in records])
