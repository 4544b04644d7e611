"""Scenario `naive`: what teams usually write, for scale: one `session.merge` per record.

Always a size-`S` district (the naive way takes minutes there already). The sandbox serves
it from its own process. Two fresh databases receive it:

* naive: this process pages every collection with the Clever client, runs each record
  through the sync's own normalizers (so both sides store the same columns), builds the
  SQLModel object of the record and of each link it lists, and `session.merge`s each one
  (an enrollment, whose key is a generated id, is looked up and added when absent),
  committing once per page. No staging, no warnings, no deactivation: less work than a
  sync does;
* the real `roster sync` as a process, as in the `sync` scenario.

The figure is the factor between the two, in rows of the live tables per second of wall
time: how much the set-based design wins by.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel, select

from app.clever.client import MAX_PAGE_SIZE, CleverClient
from app.mirror import models
from app.settings import to_sqlalchemy_url
from app.sync import normalize
from app.sync.full import COLLECTIONS, normalized_batch
from bench import report
from bench.databases import connect, row_counts, scratch_database
from bench.options import BenchOptions
from bench.processes import Sandbox
from bench.processes import sandbox_process as start_sandbox
from bench.sync import run_sync, worker_environment

SIZE = "S"
# The target: the design beats the naive way by at least this factor.
MIN_FACTOR = 10.0

ENTITY_MODELS: dict[str, type[SQLModel]] = {
    "districts": models.District,
    "schools": models.School,
    "terms": models.Term,
    "courses": models.Course,
    "users": models.User,
    "sections": models.Section,
}

LINK_MODELS: dict[str, type[SQLModel]] = {
    "user_schools": models.UserSchool,
    "section_teachers": models.SectionTeacher,
    "contact_relationships": models.ContactRelationship,
}


@dataclass(frozen=True)
class NaiveRun:
    seconds: float
    records: int
    merges: int
    pages: int


async def naive_sync(sandbox: Sandbox, database_url: str) -> NaiveRun:
    """Mirror the sandbox's district into `database_url` one `session.merge` at a time."""
    engine = create_async_engine(to_sqlalchemy_url(database_url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    records = merges = pages = 0
    started = time.perf_counter()
    try:
        async with CleverClient(
            sandbox.token,
            base_url=sandbox.base_url,
            api_version="v3.1",
            district_id=sandbox.district_id,
            page_size=MAX_PAGE_SIZE,
        ) as client:
            for collection in COLLECTIONS:
                async for page in client.iter_pages(collection):
                    pages += 1
                    records += len(page.raw_records)
                    async with sessions() as session:
                        merges += await _merge_page(
                            session, collection, page.raw_records, sandbox.district_id
                        )
                        await session.commit()
    finally:
        await engine.dispose()
    return NaiveRun(time.perf_counter() - started, records, merges, pages)


async def _merge_page(
    session: AsyncSession, collection: str, raws: Sequence[Any], district_id: str
) -> int:
    now = datetime.now(UTC)
    stamps = {"district_id": district_id, "first_seen_at": now, "updated_at": now}
    merged = 0
    for kind, rows in normalized_batch(collection, raws, sensitive=False):
        if kind.name in ENTITY_MODELS:
            model = ENTITY_MODELS[kind.name]
            for row in rows:
                values = dict(zip(normalize.COLUMNS[kind.name], row, strict=True))
                values["raw"] = orjson.loads(values["raw"])
                if kind.name == "districts":
                    values |= {"first_seen_at": now, "updated_at": now}
                else:
                    values |= stamps
                await session.merge(model(**values))
                merged += 1
        elif kind.name == "enrollments":
            for section_id, student_id in rows:
                found = await session.execute(
                    select(models.Enrollment).where(
                        models.Enrollment.section_id == section_id,
                        models.Enrollment.student_id == student_id,
                        models.Enrollment.ended_at.is_(None),  # type: ignore[union-attr]
                    )
                )
                if found.scalar_one_or_none() is None:
                    session.add(
                        models.Enrollment(
                            section_id=section_id,
                            student_id=student_id,
                            district_id=district_id,
                            started_at=now,
                        )
                    )
                merged += 1
        elif kind.name in LINK_MODELS:
            model = LINK_MODELS[kind.name]
            for row in rows:
                values = dict(zip(kind.columns, row, strict=True)) | stamps
                await session.merge(model(**values))
                merged += 1
    return merged


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its table, save its figures."""
    server = options.server_url
    with start_sandbox(SIZE, log_dir=options.log_dir, startup_timeout=options.timeout) as sandbox:
        async with (
            scratch_database(server, "naive") as naive_db,
            scratch_database(server, "sync", template=naive_db) as synced,
        ):
            naive = await naive_sync(sandbox, naive_db.url)
            connection = await connect(naive_db.url)
            try:
                naive_rows = await row_counts(connection)
            finally:
                await connection.close()
            connection = await connect(synced.url)
            try:
                env = worker_environment(synced.url, options.redis_url, sandbox)
                log = options.log_dir / f"naive-sync-{SIZE}.log"
                sync = await run_sync(connection, sandbox, env, log, options.timeout)
                sync_rows = await row_counts(connection)
            finally:
                await connection.close()
    naive_total, sync_total = sum(naive_rows.values()), sum(sync_rows.values())
    naive_rate = naive_total / naive.seconds
    sync_rate = sync_total / sync.wall_seconds
    factor = sync_rate / naive_rate
    figures = {
        "naive": asdict(naive),
        "naive_rows": naive_rows,
        "sync_rows": sync_rows,
        "naive_rows_per_second": naive_rate,
        "sync_wall_seconds": sync.wall_seconds,
        "sync_rows_per_second": sync_rate,
        "factor": factor,
    }
    m = report
    m.print_table(
        f"naive: per-record session.merge against roster sync, size-{SIZE} district",
        ["figure", "value", "goal", "verdict"],
        [
            ["naive: wall", m.seconds(naive.seconds), "", ""],
            ["naive: records read / merges", f"{naive.records} / {naive.merges}", "", ""],
            ["naive: rows in live tables", m.count(naive_total), "", ""],
            ["naive rows/s", m.rate(naive_rate), "", ""],
            ["roster sync: wall (process)", m.seconds(sync.wall_seconds), "", ""],
            ["roster sync: rows in live tables", m.count(sync_total), "", ""],
            ["roster sync rows/s", m.rate(sync_rate), "", ""],
            ["sync / naive rows/s", m.ratio(factor), f">= {MIN_FACTOR:.0f}x",
             m.verdict(factor >= MIN_FACTOR)],
        ],
    )  # fmt: skip
    report.write_json(options.results_dir, "naive", SIZE, figures)
    return figures
