"""The two measured endpoints, the ids they are asked for, and the mirrored database.

The district of the chosen size is mirrored by the real full sync (the sandbox and `roster
sync` in child processes, as in the `sync` scenario), then vacuumed and analyzed. Syncing an
M district takes minutes, so `--keep-database` keeps the synced database
(`roster_bench_api_<size>`) and later runs with the flag reuse it while it is current.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory

from app.migrations import alembic_config
from app.mirror.queries.collections import Visibility
from app.mirror.queries.roster import teacher_students_sql, user_sections_by_term_sql
from bench import report
from bench.databases import ScratchDatabase, connect, scratch_database, with_database
from bench.options import BenchOptions
from bench.processes import sandbox_process as start_sandbox
from bench.sync import run_sync, worker_environment

# Ids per sample (fewer in districts too small to have them): enough that the load spreads
# over the district, few enough to hand over.
SAMPLE_SIZE = 1000
SAMPLE_TABLE = "bench_sample_ids"
# The endpoints' default page size is 100; the statement asks for one more row.
PAGE_ROWS = 101
SCOPE = Visibility(district_ids=None, include_inactive=False, sensitive=False)


@dataclass(frozen=True)
class Endpoint:
    """A measured endpoint: its path, the statement it runs, the ids it is asked for."""

    name: str
    path: str
    """With `{id}` where the id goes."""
    sample: str
    """Which sample of ids (`SAMPLES`) requests draw from."""
    statement: str
    """The endpoint's SQL with `$1` the id; further parameters in `arguments`."""
    item_keys: tuple[str, ...]
    """Keys every element of the body's `data` list has."""
    paged: bool
    """Whether the body has a `next_cursor`."""
    arguments: dict[str, int] = field(default_factory=dict)
    """`$2`, `$3`... in order, by the names pgbench gives them."""

    def malformed(self, body: Any) -> str | None:
        """What is wrong with a parsed body of this endpoint, if anything."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return "no `data` list"
        if self.paged and "next_cursor" not in body:
            return "no `next_cursor`"
        for item in body["data"]:
            if not isinstance(item, dict) or not set(self.item_keys) <= item.keys():
                return f"an element of `data` without {', '.join(self.item_keys)}"
        return None

    def pgbench_script(self, sample_size: int) -> str:
        """The statement as a pgbench script: the id looked up in the sample table by a
        random row number, the other parameters as pgbench variables (bound when prepared)."""
        lookup = f"(SELECT id FROM {SAMPLE_TABLE} WHERE sample = '{self.sample}' AND n = :n)"
        values = [lookup, *(f":{name}" for name in self.arguments)]
        statement = re.sub(
            r"\$(\d+)", lambda match: values[int(match.group(1)) - 1], self.statement
        )
        settings = [f"\\set n random(1, {sample_size})"]
        settings += [f"\\set {name} {value}" for name, value in self.arguments.items()]
        return "\n".join([*settings, statement.strip() + ";", ""])


ENDPOINTS = (
    Endpoint(
        name="teachers/{id}/students",
        path="/v1/teachers/{id}/students",
        sample="teachers",
        statement=teacher_students_sql(SCOPE, paged=False),
        item_keys=("id", "section_ids"),
        paged=True,
        arguments={"page_rows": PAGE_ROWS},
    ),
    Endpoint(
        name="users/{id}/sections/by-term",
        path="/v1/users/{id}/sections/by-term",
        sample="users",
        statement=user_sections_by_term_sql(SCOPE, role=None),
        item_keys=("term", "current", "sections"),
        paged=False,
    ),
)

# Ids in a stable pseudo-random order (md5), so every run draws from the same sample.
SAMPLES: dict[str, str] = {
    # Teachers of at least one live section with a current enrollment.
    "teachers": """
        SELECT st.teacher_id FROM section_teachers st
        JOIN sections s ON s.id = st.section_id AND s.deleted_at IS NULL
        JOIN users u ON u.id = st.teacher_id AND u.deleted_at IS NULL
        WHERE st.deleted_at IS NULL AND EXISTS (
            SELECT 1 FROM enrollments e WHERE e.section_id = st.section_id AND e.ended_at IS NULL)
        GROUP BY st.teacher_id ORDER BY md5(st.teacher_id) LIMIT $1
    """,
    # Live students and teachers, half each: teachers have the larger answers.
    "users": """
        (SELECT id FROM users WHERE deleted_at IS NULL AND 'student' = ANY(roles)
         ORDER BY md5(id) LIMIT $1::int / 2)
        UNION ALL
        (SELECT id FROM users WHERE deleted_at IS NULL AND 'teacher' = ANY(roles)
         ORDER BY md5(id) LIMIT $1::int - $1::int / 2)
    """,
}


async def _admin(server_url: str, statement: str) -> None:
    connection = await connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _is_current(server_url: str, database: ScratchDatabase) -> bool:
    """Whether `database` exists, holds a succeeded sync and is migrated to head."""
    admin = await connect(server_url)
    try:
        found = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database.name)
    finally:
        await admin.close()
    if not found:
        return False
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    connection = await connect(database.url)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        synced = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE status = 'succeeded')"
        )
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()
    return bool(synced) and version == head


async def _mirror(options: BenchOptions, database: ScratchDatabase) -> None:
    """Sync the sandbox district into `database` with `roster sync`; vacuum and analyze."""
    log_dir = options.log_dir
    with start_sandbox(options.size, log_dir=log_dir, startup_timeout=options.timeout) as sandbox:
        connection = await connect(database.url)
        try:
            env = worker_environment(database.url, options.redis_url, sandbox)
            log = log_dir / f"api-sync-{options.size}.log"
            synced = await run_sync(connection, sandbox, env, log, options.timeout)
        finally:
            await connection.close()
    print(f"synced the district in {report.seconds(synced.wall_seconds)}", flush=True)
    connection = await connect(database.url)
    try:
        # As a database that has been serving for a while would be (autovacuum may be off).
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


@asynccontextmanager
async def mirrored_database(options: BenchOptions) -> AsyncIterator[ScratchDatabase]:
    """A database holding the sandbox district as `roster sync` mirrors it.

    Without `keep_database`, a scratch database dropped afterwards. With it, the kept one
    when it is current, else a new one, renamed into place only once the sync succeeded.
    """
    name = f"roster_bench_api_{options.size.lower()}"
    kept = ScratchDatabase(name, with_database(options.server_url, name))
    if options.keep_database and await _is_current(options.server_url, kept):
        print(f"reusing the synced database {kept.name}", flush=True)
        yield kept
        return
    async with scratch_database(options.server_url, "api") as fresh:
        await _mirror(options, fresh)
        if not options.keep_database:
            yield fresh
            return
        # The scratch block then drops a name that no longer exists, which is a no-op.
        await _admin(options.server_url, f'DROP DATABASE IF EXISTS "{kept.name}" WITH (FORCE)')
        await _admin(options.server_url, f'ALTER DATABASE "{fresh.name}" RENAME TO "{kept.name}"')
    print(f"kept the synced database as {kept.name}", flush=True)
    yield kept


async def draw_samples(connection: asyncpg.Connection) -> dict[str, list[str]]:
    """The id samples, also written to `SAMPLE_TABLE` (row numbers from 1) for pgbench."""
    samples = {
        name: [row[0] for row in await connection.fetch(query, SAMPLE_SIZE)]
        for name, query in SAMPLES.items()
    }
    empty = [name for name, ids in samples.items() if not ids]
    if empty:
        raise RuntimeError(f"the district has no ids for the samples {empty}")
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {SAMPLE_TABLE}"
        " (sample text, n int, id text NOT NULL, PRIMARY KEY (sample, n))"
    )
    async with connection.transaction():
        await connection.execute(f"TRUNCATE {SAMPLE_TABLE}")
        for name, ids in samples.items():
            await connection.execute(
                f"INSERT INTO {SAMPLE_TABLE} SELECT $1, n, id"
                " FROM unnest($2::text[]) WITH ORDINALITY AS u(id, n)",
                name,
                ids,
            )
    await connection.execute(f"VACUUM (ANALYZE) {SAMPLE_TABLE}")
    return samples
