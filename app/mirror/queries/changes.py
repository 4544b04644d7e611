"""The change feed: the change log in the order it became final.

Changes are ordered by (`xid`, `seq`): the writing transaction's id, then the order of
writing within it. Transactions commit in any order, so the feed only shows changes of
transactions older than every transaction still running (the snapshot's `xmin`): anything
that commits later has an id at least that high and sorts after what was already shown. A
position is therefore final once shown, and a reader never sees part of a transaction.
The price: a change shows once every older write transaction has ended (at most the
length of the longest merge running beside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

import asyncpg

from app.mirror.queries.sql import Params, where

# The transactions below this id have all ended.
FINAL_BELOW = "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"

# The live tables whose changes the log records: records, then links (whose changes name
# both records).
Entity = Literal[
    "districts",
    "schools",
    "terms",
    "courses",
    "users",
    "sections",
    "user_schools",
    "section_teachers",
    "contact_relationships",
    "enrollments",
]
ENTITIES: tuple[str, ...] = get_args(Entity)


@dataclass(frozen=True, order=True)
class Position:
    """A place in the feed: after the change (xid, seq)."""

    xid: int
    seq: int

    def __str__(self) -> str:
        return f"{self.xid}-{self.seq}"


@dataclass(frozen=True)
class Horizon:
    """How far the prune went: changes before `position` may be gone, and history before
    `pruned_before` is incomplete."""

    position: Position
    pruned_before: datetime | None


async def horizon(connection: asyncpg.Connection) -> Horizon:
    row = await connection.fetchrow("SELECT xid, seq, pruned_before FROM history_horizon")
    if row is None:
        return Horizon(Position(0, 0), None)
    return Horizon(Position(row["xid"], row["seq"]), row["pruned_before"])


async def latest(connection: asyncpg.Connection) -> Position:
    """The position after every change final now (changes to come sort after it)."""
    final: int = await connection.fetchval(f"SELECT {FINAL_BELOW}")
    return Position(final, 0)


# A link's records are of its district (the merge never links across districts; this
# holds should such a link be written some other way).
_WITHIN_DISTRICT = (
    "(refs IS NULL OR ("
    + " AND ".join(
        f"(refs ->> '{ref}' IS NULL OR EXISTS (SELECT 1 FROM {table} x"
        f" WHERE x.id = refs ->> '{ref}' AND x.district_id = changes.district_id))"
        for ref, table in (
            ("section_id", "sections"),
            ("user_id", "users"),
            ("student_id", "users"),
            ("school_id", "schools"),
        )
    )
    + "))"
)

_ENTRY = """jsonb_build_object(
    'seq', seq, 'entity', entity, 'id', record_id, 'district_id', district_id, 'op', op,
    'fields', fields, 'run_id', run_id, 'applied_at', applied_at
) || COALESCE(refs, '{}'::jsonb)"""


async def read(
    connection: asyncpg.Connection,
    after: Position,
    *,
    district_ids: list[str] | None,
    district_id: str | None,
    entities: list[str] | None,
    limit: int,
) -> tuple[list[str], Position]:
    """Up to `limit` changes after `after` (as JSON), oldest first, and the position to
    read on from: the last change's, or when fewer came, the final horizon (nothing the
    filters let through lies before it)."""
    params = Params()
    conditions = [
        f"(xid, seq) > ({params.add(after.xid)}, {params.add(after.seq)})",
        f"xid < {FINAL_BELOW}",
        # Versions that only moved `updated_at` serve as-of reads, not consumers.
        "op <> 'touched'",
        _WITHIN_DISTRICT,
    ]
    if district_ids is not None:
        conditions.append(f"district_id = ANY({params.add(district_ids)}::text[])")
    if district_id is not None:
        conditions.append(f"district_id = {params.add(district_id)}")
    if entities is not None:
        conditions.append(f"entity = ANY({params.add(entities)}::text[])")
    # One statement, one snapshot: the horizon and the page agree.
    rows = await connection.fetch(
        f"""
        SELECT NULL::bigint AS xid, NULL::bigint AS seq, NULL::text AS entry, {FINAL_BELOW} AS below
        UNION ALL (
            SELECT xid, seq, ({_ENTRY})::text, NULL FROM changes
            {where(conditions)}
            ORDER BY xid, seq LIMIT {params.add(limit)}
        )
        """,
        *params.values,
    )
    below = next(row["below"] for row in rows if row["entry"] is None)
    page = sorted((row for row in rows if row["entry"] is not None), key=lambda r: (r[0], r[1]))
    entries = [row["entry"] for row in page]
    if len(page) == limit:
        return entries, Position(page[-1]["xid"], page[-1]["seq"])
    return entries, max(after, Position(below, 0))
