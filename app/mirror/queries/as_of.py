"""Reads as the mirror knew a district at an earlier instant.

A read statement runs unchanged against the past: CTEs named like the live tables shadow
them (a CTE's name wins over a table's within its statement), each rebuilt from the change
log as of the instant, so every shape and join works as it does on the live tables.
Records and their links (schools, teachers, contacts) come from each row's newest change
at or before the instant; enrollments from their own history (`started_at`, `ended_at`).
`current_date` becomes the instant's date, so `current` terms and inferred graduation
years are those of that day. Local edits (overrides, people) show as they are now.

The rebuilt tables hold the whole district: such a read costs a pass over the district's
change log, where a live read costs a few index probes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from app.mirror.queries.changes import ENTITIES

# Tables rebuilt from the change log's states (enrollments keep their own history).
_LOGGED = tuple(entity for entity in ENTITIES if entity not in ("districts", "enrollments"))


def _tables_at(district: str, instant: str) -> str:
    """`name AS (...)` for every rebuilt table (no leading WITH)."""
    ctes = [
        f"""{table} AS (
            SELECT r.* FROM (
                SELECT DISTINCT ON (c.record_id) c.state FROM changes c
                WHERE c.district_id = {district} AND c.entity = '{table}'
                  AND c.applied_at <= {instant}
                ORDER BY c.record_id, c.seq DESC
            ) v CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, v.state) r
        )"""
        for table in _LOGGED
    ]
    ctes.append(
        f"""enrollments AS (
            SELECT e.id, e.section_id, e.student_id, e.district_id, e.started_at,
                   CASE WHEN e.ended_at <= {instant} THEN e.ended_at END AS ended_at
            FROM enrollments e
            WHERE e.district_id = {district} AND e.started_at <= {instant}
        )"""
    )
    return ", ".join(ctes)


def at(
    sql: str, args: Sequence[object], district_id: str, instant: datetime
) -> tuple[str, list[object]]:
    """The statement `sql` (with parameters `args`) run against the district as of
    `instant`: the statement and its parameters."""
    district, moment = f"${len(args) + 1}", f"${len(args) + 2}::timestamptz"
    body = sql.lstrip()
    ctes = _tables_at(district, moment)
    # The statement's own CTEs follow the rebuilt tables.
    rewritten = f"WITH {ctes}, {body[4:]}" if body[:4].upper() == "WITH" else f"WITH {ctes} {body}"
    rewritten = rewritten.replace("current_date", f"({moment} AT TIME ZONE 'UTC')::date")
    return rewritten, [*args, district_id, instant]


async def district_of(
    connection: asyncpg.Connection, table: str, record_id: str, district_ids: list[str] | None
) -> str | None:
    """The district of a record the mirror holds or held (records are never deleted), when
    the scope may see it."""
    column = "id" if table == "districts" else "district_id"
    district: str | None = await connection.fetchval(
        f"SELECT {column} FROM {table} WHERE id = $1", record_id
    )
    if district is None or (district_ids is not None and district not in district_ids):
        return None
    return district


async def fetch_owned(
    connection: asyncpg.Connection,
    sql: str,
    args: Sequence[object],
    *,
    instant: datetime | None,
    owner_table: str,
    owner_id: str,
    district_ids: list[str] | None,
) -> asyncpg.Record | None:
    """`fetchrow(sql, *args)`, as of `instant` when one is given (None when the owner is
    not a record of a district the scope may see)."""
    if instant is None:
        return await connection.fetchrow(sql, *args)
    district_id = await district_of(connection, owner_table, owner_id, district_ids)
    if district_id is None:
        return None
    past_sql, past_args = at(sql, args, district_id, instant)
    return await connection.fetchrow(past_sql, *past_args)
