"""`roster sync` as an operator runs it: a district that does not exist is refused before
a run is recorded; a sync reports per collection what it read, against the previous run's
counts, and ends with a table of what it changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import asyncpg
import pytest

from app.cli import progress_amount, sync_summary
from app.settings import Settings
from app.sync.runs import previous_records
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.test_processes import ROSTER, cli_environment


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=7300)) as running:
        yield running


def _roster_sync(
    settings: Settings, sandbox: RunningSandbox, *args: str
) -> subprocess.CompletedProcess[str]:
    env = cli_environment(settings, sandbox, page_size=10)
    return subprocess.run(
        [*ROSTER, "sync", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_a_district_no_token_serves_is_refused_without_a_run(
    settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool
) -> None:
    refused = _roster_sync(settings, sandbox, "nope")
    assert refused.returncode == 2, refused.stderr
    assert "unknown district 'nope'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await pool.fetchval("SELECT count(*) FROM sync_runs") == 0


async def test_a_sync_reports_its_collections_and_ends_with_a_summary_table(
    settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool
) -> None:
    district = sandbox.districts[0]
    first = _roster_sync(settings, sandbox, district.id)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    header = next(line for line in lines if "created" in line)
    assert header.split() == ["created", "updated", "deactivated", "unchanged", "open", "warnings"]
    users = next(line for line in lines if line.startswith("users "))
    created = int(users.split()[1].replace(",", ""))
    mirrored = await pool.fetchval("SELECT count(*) FROM users WHERE district_id = $1", district.id)
    assert created == mirrored > 0
    assert any(line.startswith("sync summary (") for line in lines)
    assert "pages" not in first.stderr
    assert f"district {district.id} run" in first.stderr and "succeeded in" in first.stderr

    # The next run is told what to expect: what this one read, per collection.
    async with pool.acquire() as connection:
        expected = await previous_records(connection, district.id)
    assert expected["users"] == created
    assert set(expected) >= {"schools", "users", "sections"}

    second = _roster_sync(settings, sandbox, district.id)
    assert second.returncode == 0, second.stderr
    again = next(line for line in second.stderr.splitlines() if line.startswith("users "))
    assert again.split()[1:5] == ["0", "0", "0", f"{created:,}"]


def test_progress_reads_against_the_previous_runs_counts() -> None:
    assert progress_amount(3200, 5000) == "3,200 / ~5,000"
    assert progress_amount(3200, None) == "3,200"


def test_the_summary_lists_entities_then_the_runs_warnings_and_events() -> None:
    table = sync_summary(
        {  # in jsonb's order: keys by length
            "users": {"created": 3, "updated": 2, "deactivated": 1, "unchanged": 5000},
            "schools": {"unchanged": 2},
            "enrollments": {"created": 7},
            "data_warnings": {"opened": 4, "seen_again": 1, "resolved": 0},
        },
        {"users": 5},
        12.34,
    )
    assert [list(column.cells) for column in table.columns] == [
        ["schools", "users", "enrollments"],
        ["0", "3", "7"],
        ["0", "2", "0"],
        ["0", "1", "0"],
        ["2", "5,000", "0"],
        ["0", "5", "0"],
    ]
    assert table.caption == "data warnings: opened 4, seen again 1, resolved 0"
    assert str(table.title) == "sync summary (12.3 s)"
    idle = sync_summary({"events": {}}, {}, 0.1)
    assert idle.row_count == 0 and idle.caption == "events: none new"
