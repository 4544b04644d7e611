"""Retention of the change log: the only writer that deletes from `changes` and the only
writer of `history_horizon`.

Changes applied before the cutoff go, except each record's (or link's) newest one before it:
that one still tells what the record was at the cutoff, so as-of reads stay exact from the
cutoff on. The horizon records the cutoff (older `as_of` instants are refused) and the feed
position of the newest change before it (older cursors are refused: changes after them
may be gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# One prune at a time (a second worker's daily job waits, then finds little to do).
_PRUNE_LOCK = 0x726F7374_70726E65  # "rost" "prne"


@dataclass(frozen=True)
class Pruned:
    cutoff: datetime
    deleted: int


async def prune(connection: asyncpg.Connection, *, retention_days: int) -> Pruned:
    """Delete the changes older than `retention_days` that a newer one before the cutoff
    supersedes, and move the horizon to the cutoff."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _PRUNE_LOCK)
        cutoff: datetime = await connection.fetchval(
            "SELECT now() - make_interval(days => $1)", retention_days
        )
        newest = await connection.fetchrow(
            "SELECT xid, seq FROM changes WHERE applied_at < $1"
            " ORDER BY xid DESC, seq DESC LIMIT 1",
            cutoff,
        )
        status = await connection.execute(
            """
            DELETE FROM changes c
            WHERE c.applied_at < $1 AND EXISTS (
                SELECT 1 FROM changes n
                WHERE n.district_id = c.district_id AND n.entity = c.entity
                  AND n.record_id = c.record_id AND n.seq > c.seq AND n.applied_at < $1
            )
            """,
            cutoff,
        )
        xid, seq = (newest["xid"], newest["seq"]) if newest is not None else (0, 0)
        await connection.execute(
            """
            INSERT INTO history_horizon AS h (id, pruned_before, xid, seq) VALUES (1, $1, $2, $3)
            ON CONFLICT (id) DO UPDATE
            SET pruned_before = GREATEST(h.pruned_before, EXCLUDED.pruned_before),
                xid = CASE WHEN (EXCLUDED.xid, EXCLUDED.seq) > (h.xid, h.seq)
                           THEN EXCLUDED.xid ELSE h.xid END,
                seq = CASE WHEN (EXCLUDED.xid, EXCLUDED.seq) > (h.xid, h.seq)
                           THEN EXCLUDED.seq ELSE h.seq END
            """,
            cutoff,
            xid,
            seq,
        )
    return Pruned(cutoff=cutoff, deleted=int(status.rsplit(" ", 1)[-1]))
