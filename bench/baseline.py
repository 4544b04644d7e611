"""The COPY baseline of a full sync: the synced rows loaded with plain `COPY` into empty tables.

The rows are dumped from the synced database in binary COPY format, then loaded into a
fresh database migrated the same way (same tables, indexes, constraints), one table after
the other in merge order, each with its own `COPY ... FROM STDIN`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.databases import checkpoint


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    bytes: int
    seconds: float


async def dump_tables(
    connection: asyncpg.Connection, tables: Sequence[str], directory: Path
) -> dict[str, Path]:
    """Write each table's rows to `<directory>/<table>.copy` (binary COPY format)."""
    files: dict[str, Path] = {}
    for table in tables:
        path = directory / f"{table}.copy"
        await connection.copy_from_table(table, output=str(path), format="binary")
        files[table] = path
    return files


async def load_tables(
    connection: asyncpg.Connection, files: dict[str, Path], rows: dict[str, int]
) -> list[TableLoad]:
    """`COPY` each file into its table, timing each; checkpoints first."""
    await checkpoint(connection)
    loads: list[TableLoad] = []
    for table, path in files.items():
        started = time.perf_counter()
        await connection.copy_to_table(table, source=str(path), format="binary")
        elapsed = time.perf_counter() - started
        loads.append(TableLoad(table, rows[table], path.stat().st_size, elapsed))
    return loads
