"""Data warnings: what syncs found wrong in the districts' data, kept rather than refused
(SPEC M3)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query

from app.api.auth import AUTH_RESPONSES, Principal, ReadAccess
from app.api.deps import ConnectionDep, DistrictFilter
from app.api.pagination import PageDep, encode_cursor
from app.api.problems import ProblemError
from app.api.schemas import Page
from app.api.sync_schemas import DataWarning, WarningCount, WarningSummary

router = APIRouter(prefix="/v1", tags=["data warnings"], responses=AUTH_RESPONSES)

Entity = Literal["districts", "schools", "terms", "courses", "users", "sections"]

_COLUMNS = (
    "id, district_id, entity, record_id, field, code, detail, first_seen_at, first_run_id,"
    " resolved_at IS NOT NULL AS resolved, resolved_at, resolved_run_id"
)


class _Where:
    """WHERE conditions and their numbered parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


def _visible(principal: Principal, district_id: str | None) -> _Where:
    where = _Where()
    if principal.district_ids is not None:
        where.add(f"district_id = ANY({where.param(principal.district_ids)}::text[])")
    if district_id is not None:
        where.add(f"district_id = {where.param(district_id)}")
    return where


@router.get("/data-warnings", name="data-warnings-list", response_model=Page[DataWarning])
async def list_warnings(
    principal: ReadAccess,
    connection: ConnectionDep,
    page: PageDep,
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
    where = _visible(principal, district_id)
    if entity is not None:
        where.add(f"entity = {where.param(entity)}")
    if code is not None:
        where.add(f"code = {where.param(code)}")
    if resolved is not None:
        where.add(f"(resolved_at IS NOT NULL) = {where.param(resolved)}")
    if page.after is not None:
        where.add(f"id > {where.param(_warning_position(page.after))}")
    records = await connection.fetch(
        f"SELECT {_COLUMNS} FROM data_warnings {where.sql()}"
        f" ORDER BY id LIMIT {where.param(page.limit + 1)}",
        *where.params,
    )
    shown = [DataWarning.model_validate(dict(record)) for record in records[: page.limit]]
    cursor = encode_cursor(str(shown[-1].id)) if len(records) > page.limit else None
    return Page[DataWarning](data=shown, next_cursor=cursor)


@router.get("/data-warnings/summary", name="data-warnings-summary", response_model=WarningSummary)
async def summarize_warnings(
    principal: ReadAccess, connection: ConnectionDep, district_id: DistrictFilter = None
) -> WarningSummary:
    """How many warnings of each code are open and how many were resolved, over the
    districts the key may see."""
    where = _visible(principal, district_id)
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT code, count(*) FILTER (WHERE resolved_at IS NULL) AS open,"
        " count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved"
        f" FROM data_warnings {where.sql()} GROUP BY code ORDER BY code",
        *where.params,
    )
    return WarningSummary(data=[WarningCount.model_validate(dict(r)) for r in records])


def _warning_position(key: str) -> int:
    """The warning id a cursor points after."""
    if not (key.isascii() and key.isdigit() and len(key) <= 19):
        raise ProblemError(
            422,
            "`cursor` is not a cursor this API returned; pass `next_cursor` back unchanged.",
            title="Invalid cursor",
        )
    return int(key)
