"""What the console's pages show, read from the mirror and the run log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.api.sync_schemas import SYNC_RUN_COLUMNS
from app.mirror.queries.shapes import district_connection, district_paused
from app.mirror.queries.sql import Params, where
from app.mirror.queries.warnings import RECORD_NAME, WARNINGS_FROM

# Runs shown on a district's page, newest first.
HISTORY_RUNS = 30


async def districts(
    connection: asyncpg.Connection, district_ids: list[str] | None
) -> list[asyncpg.Record]:
    """Every district the key may see (None: all), with its last full and incremental run."""
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""
        SELECT d.id, d.name, {district_connection("d")} AS connection,
               {district_paused("d")} AS paused,
               (SELECT max(r.finished_at) FROM sync_runs r
                WHERE r.district_id = d.id AND r.status = 'succeeded') AS fresh_at,
               full_run.id AS full_id, full_run.status AS full_status,
               full_run.finished_at AS full_finished_at, full_run.counts AS full_counts,
               inc.id AS incremental_id, inc.status AS incremental_status,
               inc.finished_at AS incremental_finished_at,
               (SELECT count(*) FROM users u
                WHERE u.district_id = d.id AND u.deleted_at IS NULL) AS users,
               (SELECT count(*) FROM sections s
                WHERE s.district_id = d.id AND s.deleted_at IS NULL) AS sections,
               (SELECT count(*) FROM data_warnings w
                WHERE w.district_id = d.id AND w.resolved_at IS NULL) AS warnings
        FROM districts d
        LEFT JOIN LATERAL (
            SELECT r.* FROM sync_runs r WHERE r.district_id = d.id AND r.mode = 'full'
            ORDER BY r.created_at DESC LIMIT 1
        ) full_run ON true
        LEFT JOIN LATERAL (
            SELECT r.* FROM sync_runs r WHERE r.district_id = d.id AND r.mode = 'incremental'
            ORDER BY r.created_at DESC LIMIT 1
        ) inc ON true
        WHERE $1::text[] IS NULL OR d.id = ANY($1::text[])
        ORDER BY d.name, d.id
        """,
        district_ids,
    )
    return rows


async def district_names(
    connection: asyncpg.Connection, district_ids: list[str] | None
) -> list[asyncpg.Record]:
    """Id and name of every district the key may see (None: all), by name."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT id, name FROM districts WHERE $1::text[] IS NULL OR id = ANY($1::text[])"
        " ORDER BY name, id",
        district_ids,
    )
    return rows


async def run(connection: asyncpg.Connection, run_id: uuid.UUID) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE id = $1", run_id
    )
    return record


async def runs(connection: asyncpg.Connection, district_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE district_id = $1"
        " ORDER BY created_at DESC LIMIT $2",
        district_id,
        HISTORY_RUNS,
    )
    return rows


async def events_cursor(
    connection: asyncpg.Connection, district_id: str
) -> tuple[str | None, datetime | None]:
    """The newest event the mirror applied, and when the cursor last moved."""
    record = await connection.fetchrow(
        "SELECT events_cursor, events_cursor_at FROM district_sync_state WHERE district_id = $1",
        district_id,
    )
    return (record["events_cursor"], record["events_cursor_at"]) if record else (None, None)


def changed(counts: dict[str, Any] | None) -> int:
    """Records a run created, updated or deactivated, over every table."""
    return sum(
        int(table.get(kind, 0))
        for name, table in (counts or {}).items()
        if isinstance(table, dict) and name not in ("events", "data_warnings")
        for kind in ("created", "updated", "deactivated")
    )


# --- data warnings ------------------------------------------------------------------------

# Warnings listed on the page; the CSV export has them all.
WARNINGS_SHOWN = 500


@dataclass(frozen=True)
class WarningFilter:
    """Which warnings a page or export shows: the key's districts, then the form's fields."""

    district_ids: list[str] | None  # the key's (None: every district)
    district_id: str | None = None
    code: str | None = None
    entity: str | None = None
    school_id: str | None = None  # NO_SCHOOL: warnings about records of no school
    status: str = "open"  # open, resolved or all

    def sql(self, params: Params) -> str:
        conditions = []
        if self.district_ids is not None:
            conditions.append(f"w.district_id = ANY({params.add(self.district_ids)}::text[])")
        for column, value in (
            ("w.district_id", self.district_id),
            ("w.code", self.code),
            ("w.entity", self.entity),
        ):
            if value is not None:
                conditions.append(f"{column} = {params.add(value)}")
        if self.school_id == NO_SCHOOL:
            conditions.append("sc.id IS NULL")
        elif self.school_id is not None:
            conditions.append(f"sc.id = {params.add(self.school_id)}")
        if self.status == "open":
            conditions.append("w.resolved_at IS NULL")
        elif self.status == "resolved":
            conditions.append("w.resolved_at IS NOT NULL")
        return where(conditions)


NO_SCHOOL = "none"

WARNING_COLUMNS = (
    "district_id",
    "code",
    "entity",
    "school_id",
    "school_name",
    "record_id",
    "record_name",
    "field",
    "detail",
    "first_seen_at",
    "resolved_at",
)
_WARNING_SELECT = f"""
    SELECT w.district_id, w.code, w.entity, sc.id AS school_id, sc.name AS school_name,
           w.record_id, {RECORD_NAME} AS record_name, w.field, w.detail, w.first_seen_at,
           w.resolved_at
"""


async def warning_groups(
    connection: asyncpg.Connection, chosen: WarningFilter
) -> list[asyncpg.Record]:
    """The chosen warnings counted by code, school and entity, the largest groups first."""
    params = Params()
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""
        SELECT w.code, sc.id AS school_id, sc.name AS school_name, w.entity, count(*) AS warnings
        {WARNINGS_FROM} {chosen.sql(params)}
        GROUP BY w.code, sc.id, sc.name, w.entity
        ORDER BY count(*) DESC, w.code, sc.name NULLS LAST, w.entity
        """,
        *params.values,
    )
    return rows


async def warnings(
    connection: asyncpg.Connection, chosen: WarningFilter, *, limit: int = WARNINGS_SHOWN
) -> list[asyncpg.Record]:
    """The first chosen warnings, by code, school, entity and record."""
    params = Params()
    rows: list[asyncpg.Record] = await connection.fetch(
        f"{_WARNING_SELECT} {WARNINGS_FROM} {chosen.sql(params)}"
        f" ORDER BY w.code, sc.name NULLS LAST, w.entity, w.record_id, w.id"
        f" LIMIT {params.add(limit)}",
        *params.values,
    )
    return rows


async def each_warning(
    connection: asyncpg.Connection, chosen: WarningFilter
) -> AsyncIterator[asyncpg.Record]:
    """Every chosen warning, in the page's order, read with a cursor (call in a
    transaction): an export of a large district holds a page of rows at a time."""
    params = Params()
    async for row in connection.cursor(
        f"{_WARNING_SELECT} {WARNINGS_FROM} {chosen.sql(params)}"
        " ORDER BY w.code, sc.name NULLS LAST, w.entity, w.record_id, w.id",
        *params.values,
        prefetch=1000,
    ):
        yield row


async def warning_choices(
    connection: asyncpg.Connection, district_ids: list[str] | None
) -> tuple[list[str], list[asyncpg.Record]]:
    """The codes and schools the filters offer: those of the key's districts' warnings."""
    codes = await connection.fetch(
        "SELECT DISTINCT code FROM data_warnings"
        " WHERE $1::text[] IS NULL OR district_id = ANY($1::text[]) ORDER BY code",
        district_ids,
    )
    schools: list[asyncpg.Record] = await connection.fetch(
        "SELECT id, name, district_id FROM schools"
        " WHERE ($1::text[] IS NULL OR district_id = ANY($1::text[])) AND deleted_at IS NULL"
        " ORDER BY name, id",
        district_ids,
    )
    return [row["code"] for row in codes], schools


# --- look-up ------------------------------------------------------------------------------

# Matches a name search lists, of each kind.
MATCHES_SHOWN = 50


def _like(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def find_records(
    connection: asyncpg.Connection, text: str, district_ids: list[str] | None
) -> list[asyncpg.Record]:
    """Active users and sections whose id is `text` or whose name contains it."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        (SELECT 'user' AS kind, u.id, u.district_id,
                concat_ws(' ', u.name_first, u.name_last) AS name,
                array_to_string(u.roles, ', ') AS detail, u.id = $1 AS exact
         FROM users u
         WHERE u.deleted_at IS NULL AND ($3::text[] IS NULL OR u.district_id = ANY($3::text[]))
           AND (u.id = $1 OR concat_ws(' ', u.name_first, u.name_last) ILIKE $2
                OR u.email ILIKE $2)
         ORDER BY u.id = $1 DESC, u.name_last, u.name_first, u.id LIMIT $4)
        UNION ALL
        (SELECT 'section', s.id, s.district_id, s.display_name, sc.name, s.id = $1
         FROM sections s
         LEFT JOIN schools sc ON sc.id = s.school_id AND sc.district_id = s.district_id
         WHERE s.deleted_at IS NULL AND ($3::text[] IS NULL OR s.district_id = ANY($3::text[]))
           AND (s.id = $1 OR s.display_name ILIKE $2)
         ORDER BY s.id = $1 DESC, s.display_name, s.id LIMIT $4)
        """,
        text,
        _like(text),
        district_ids,
        MATCHES_SHOWN,
    )
    return rows


async def user_schools(
    connection: asyncpg.Connection, user_id: str, district_id: str
) -> list[asyncpg.Record]:
    """The schools a user is linked to, in each role."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """
        SELECT us.school_id, sc.name, us.role, us.is_primary
        FROM user_schools us
        LEFT JOIN schools sc ON sc.id = us.school_id AND sc.district_id = us.district_id
        WHERE us.user_id = $1 AND us.district_id = $2 AND us.deleted_at IS NULL
        ORDER BY us.is_primary DESC, sc.name, us.school_id, us.role
        """,
        user_id,
        district_id,
    )
    return rows
