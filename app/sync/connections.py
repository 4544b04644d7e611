"""Which districts Clever still connects the service to (the only writer of
`district_connections`), and which it has paused.

A district no token serves any more (the district revoked the app, or its token was
rotated away and Clever lists none) is `disconnected`: its data stays, scheduled syncs skip
it. When a token serves it again it is `connected` once more, with no manual step.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg

from app.mirror.queries.shapes import district_paused

logger = logging.getLogger(__name__)

NO_TOKEN = "no Clever token serves the district"


@dataclass(frozen=True)
class Reconciled:
    disconnected: list[str]
    reconnected: list[str]


async def reconcile(connection: asyncpg.Connection, served: Collection[str]) -> Reconciled:
    """Mark the mirrored districts not in `served` (the districts some token serves now)
    disconnected, and the served ones that were disconnected connected again."""
    served_ids = list(served)
    disconnected = await connection.fetch(
        """
        INSERT INTO district_connections AS c (district_id, status, reason)
        SELECT d.id, 'disconnected', $2 FROM districts d WHERE d.id <> ALL($1::text[])
        ON CONFLICT (district_id) DO UPDATE
        SET status = 'disconnected', reason = EXCLUDED.reason, changed_at = now()
        WHERE c.status <> 'disconnected'
        RETURNING district_id
        """,
        served_ids,
        NO_TOKEN,
    )
    reconnected = await connection.fetch(
        "UPDATE district_connections SET status = 'connected', reason = NULL, changed_at = now()"
        " WHERE status = 'disconnected' AND district_id = ANY($1::text[]) RETURNING district_id",
        served_ids,
    )
    result = Reconciled(
        sorted(row["district_id"] for row in disconnected),
        sorted(row["district_id"] for row in reconnected),
    )
    for district_id in result.disconnected:
        logger.warning("district disconnected", extra={"district_id": district_id})
    for district_id in result.reconnected:
        logger.info("district reconnected", extra={"district_id": district_id})
    return result


async def mark_disconnected(
    connection: asyncpg.Connection, district_id: str, reason: str = NO_TOKEN
) -> None:
    """Mark a mirrored district disconnected (a district never mirrored is left alone)."""
    await connection.execute(
        """
        INSERT INTO district_connections AS c (district_id, status, reason)
        SELECT id, 'disconnected', $2 FROM districts WHERE id = $1
        ON CONFLICT (district_id) DO UPDATE
        SET status = 'disconnected', reason = EXCLUDED.reason, changed_at = now()
        WHERE c.status <> 'disconnected'
        """,
        district_id,
        reason,
    )


async def mark_connected(connection: asyncpg.Connection, district_id: str) -> None:
    """A token serves the district (again)."""
    await connection.execute(
        "UPDATE district_connections SET status = 'connected', reason = NULL, changed_at = now()"
        " WHERE district_id = $1 AND status = 'disconnected'",
        district_id,
    )


async def paused_districts(connection: asyncpg.Connection, district_ids: Sequence[str]) -> set[str]:
    """The districts (of `district_ids`) Clever has paused now."""
    rows = await connection.fetch(
        f"SELECT d.id FROM districts d WHERE d.id = ANY($1::text[]) AND {district_paused('d')}",
        list(district_ids),
    )
    return {row["id"] for row in rows}
