"""Per-run staging tables: where a sync puts what it fetched before applying it.

Each run gets its own unlogged, unindexed tables in the `roster_staging` schema
(`r<run id>_<kind>`), filled with binary `COPY`. Readers never look at them; the apply step
merges them into the live tables in one transaction. Tables of a run that died are dropped by
the next run of its district (`drop_stale`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

from app.mirror import columns
from app.mirror.models import metadata

SCHEMA = "roster_staging"


@dataclass(frozen=True)
class StageKind:
    """One kind of staged data: its columns, and the live table their types come from."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]


def _entity_kind(name: str, columns: Sequence[str]) -> StageKind:
    """Staged like the live table, except `raw`: staged as the JSON bytes, so that COPY
    need not parse every record; only changed rows are parsed, when merged."""
    table = metadata.tables[name]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = tuple(
        "bytea" if column == "raw" else str(table.c[column].type.compile(dialect=dialect))
        for column in columns
    )
    return StageKind(name, tuple(columns), types)


ENTITY_KINDS: dict[str, StageKind] = {
    kind.name: kind
    for kind in (
        _entity_kind("districts", columns.DISTRICT_COLUMNS),
        _entity_kind("schools", columns.SCHOOL_COLUMNS),
        _entity_kind("terms", columns.TERM_COLUMNS),
        _entity_kind("courses", columns.COURSE_COLUMNS),
        _entity_kind("users", columns.USER_COLUMNS),
        _entity_kind("sections", columns.SECTION_COLUMNS),
    )
}

LINK_KINDS: dict[str, StageKind] = {
    kind.name: kind
    for kind in (
        StageKind(
            "user_schools",
            ("user_id", "role", "school_id", "is_primary"),
            ("text", "text", "text", "boolean"),
        ),
        StageKind(
            "contact_relationships",
            ("contact_id", "student_id", "relationship", "type"),
            ("text", "text", "text", "text"),
        ),
        StageKind(
            "section_teachers",
            ("section_id", "teacher_id", "position", "is_primary"),
            ("text", "text", "smallint", "boolean"),
        ),
        StageKind("enrollments", ("section_id", "student_id"), ("text", "text")),
    )
}

# Warnings found while normalizing, and ids a batch deletes (events, or a full sync's absentees).
WARNINGS = StageKind(
    "warnings",
    ("entity", "record_id", "field", "code", "detail"),
    ("text", "text", "text", "text", "text"),
)
DELETIONS = StageKind("deletions", ("entity", "id"), ("text", "text"))

ALL_KINDS: tuple[StageKind, ...] = (
    *ENTITY_KINDS.values(),
    *LINK_KINDS.values(),
    WARNINGS,
    DELETIONS,
)


def _join_keys(kind: StageKind) -> tuple[str, ...]:
    """The columns the merge joins a staged table on."""
    if kind.name in ENTITY_KINDS:
        return ("id",)
    if kind is WARNINGS:
        return ("entity", "record_id")
    return kind.columns[:2]


def table_prefix(run_id: uuid.UUID) -> str:
    return f"r{run_id.hex}_"


@dataclass(frozen=True)
class Staging:
    """The staging tables of one run.

    `temporary` tables live in the session of the connection that creates them and must be
    used through that connection only; they cost no file sync to empty, which suits a run of
    many small batches (an incremental one). The others, in `roster_staging`, can be filled
    from several connections and outlive the run (a held run keeps them for approval).
    """

    run_id: uuid.UUID
    temporary: bool = False

    @property
    def schema(self) -> str:
        return "pg_temp" if self.temporary else SCHEMA

    def table(self, kind: str) -> str:
        """The qualified name of this run's table for `kind` (safe to put into SQL)."""
        return f"{self.schema}.{table_prefix(self.run_id)}{kind}"

    async def create(self, connection: asyncpg.Connection) -> None:
        """Create this run's empty staging tables (again, if a previous attempt left some)."""
        async with connection.transaction():
            for kind in ALL_KINDS:
                columns = ", ".join(
                    f"{column} {type_}"
                    for column, type_ in zip(kind.columns, kind.types, strict=True)
                )
                table = self.table(kind.name)
                await connection.execute(f"DROP TABLE IF EXISTS {table}")
                if self.temporary:
                    await connection.execute(
                        f"CREATE TEMPORARY TABLE {table_prefix(self.run_id)}{kind.name} ({columns})"
                    )
                else:
                    await connection.execute(
                        f"CREATE UNLOGGED TABLE {table} ({columns})"
                        " WITH (autovacuum_enabled = false)"
                    )

    async def copy(
        self, connection: asyncpg.Connection, kind: StageKind, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Append rows to this run's `kind` table with binary COPY."""
        if not rows:
            return
        await connection.copy_records_to_table(
            f"{table_prefix(self.run_id)}{kind.name}",
            schema_name=self.schema,
            columns=list(kind.columns),
            records=rows,
        )

    async def analyze(self, connection: asyncpg.Connection) -> None:
        """Give the planner real statistics: freshly filled tables otherwise look empty.

        A temporary table holds one small batch of events, whose records are all staged in
        full: its size and the spread of its join keys are all the planner needs, and
        sampling every column of every record would cost more than merging them.
        """
        for kind in ALL_KINDS:
            keys = f" ({', '.join(_join_keys(kind))})" if self.temporary else ""
            await connection.execute(f"ANALYZE {self.table(kind.name)}{keys}")

    async def empty(self, connection: asyncpg.Connection) -> None:
        """Empty this run's tables for its next batch (inside a transaction too).

        Temporary tables are truncated: their pages live in the session's own few local
        buffers, so that is cheap. Shared tables are emptied by DELETE and VACUUM:
        truncating one makes Postgres scan the whole shared buffer pool for its pages, which
        costs more than deleting a batch's rows.
        """
        tables = ", ".join(self.table(kind.name) for kind in ALL_KINDS)
        if self.temporary:
            await connection.execute(f"TRUNCATE {tables}")
            return
        for kind in ALL_KINDS:
            await connection.execute(f"DELETE FROM {self.table(kind.name)}")
        await connection.execute(f"VACUUM (TRUNCATE false) {tables}")

    async def drop(self, connection: asyncpg.Connection) -> None:
        for kind in ALL_KINDS:
            await connection.execute(f"DROP TABLE IF EXISTS {self.table(kind.name)}")


async def drop_stale(connection: asyncpg.Connection, keep: Sequence[uuid.UUID]) -> int:
    """Drop staging tables of every run not in `keep`; returns how many were dropped.

    Called by a run that holds its district's lock: tables of other districts' live runs
    are passed in `keep` by the caller.
    """
    keep_prefixes = {table_prefix(run_id) for run_id in keep}
    names = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", SCHEMA)
    dropped = 0
    for record in names:
        name: str = record["tablename"]
        if name[: len(table_prefix(uuid.UUID(int=0)))] in keep_prefixes:
            continue
        await connection.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{name}"')
        dropped += 1
    return dropped
