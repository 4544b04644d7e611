"""Plain asyncpg connections for the bulk paths (COPY, set-based merges, locks)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from app.settings import Settings


def _encode_jsonb(value: Any) -> bytes:
    # jsonb's binary format is a version byte followed by the JSON text. Values that are
    # already JSON bytes (normalized rows) go through without another round of encoding.
    if isinstance(value, bytes):
        return b"\x01" + value
    if isinstance(value, str):
        return b"\x01" + value.encode()
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(connection: asyncpg.Connection) -> None:
    """Per-connection set-up: jsonb as Python objects, written from JSON bytes as they are."""
    await connection.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def _end_open_transaction(connection: asyncpg.Connection) -> None:
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_pool(
    settings: Settings,
    *,
    min_size: int = 1,
    max_size: int = 4,
    application_name: str = "roster-mirror-sync",
    light_reset: bool = False,
) -> asyncpg.Pool:
    """A pool of plain connections. Syncs use a small one (one connection holds the district
    lock, one does the work); the API one per process. Sessions run in UTC, so times that
    Postgres writes into JSON carry a `+00:00` offset.

    `light_reset` is for the API: its requests set no session state and release what they
    take, so a released connection is only rolled back if a transaction was left open,
    instead of the default reset, a round trip per request.
    """
    pool = await asyncpg.create_pool(
        settings.asyncpg_database_url,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_end_open_transaction if light_reset else None,
        server_settings={
            "application_name": application_name,
            "timezone": "UTC",
            # Read by the user shape's inferred graduation year.
            "roster.school_year_start_month": str(settings.school_year_start_month),
        },
    )
    assert pool is not None
    return pool


async def listening_connection(settings: Settings) -> asyncpg.Connection:
    """A connection of its own to LISTEN on (a pooled one's reset would stop listening)."""
    connection: asyncpg.Connection = await asyncpg.connect(
        settings.asyncpg_database_url,
        server_settings={"application_name": "roster-api-listener"},
    )
    return connection
