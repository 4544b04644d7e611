"""Districts' connections to Clever: rotated tokens renewed mid-run, districts that revoke the
app disconnected and reconnected, and Clever's sync pauses respected."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.api.keys import Scope, create_key
from app.mirror.queries.shapes import district_json
from app.settings import CleverApiVersion, Settings
from app.sync import runs
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.faults import FaultConfig
from sandbox.server import RunningSandbox
from tests.integration.api.sync_support import arq_queue, forget_jobs, queued_job
from tests.integration.sync_sandbox.support import (
    run_row,
    sandbox_settings,
    sync_deps,
    sync_ok,
    wait_for,
)
from tests.support.app import app_client
from workers.jobs import CANCELLED, poll_events, run_sync, schedule_full_syncs


def _oauth_deps(settings: Settings, sandbox: RunningSandbox, pool: asyncpg.Pool) -> SyncDeps:
    """Deps that learn districts' tokens from the sandbox's OAuth token endpoint, asking
    again on every scheduler pass."""
    configured = settings.model_copy(
        update={
            "clever_api_base_url": sandbox.base_url,
            "clever_oauth_base_url": sandbox.base_url,
            "clever_api_version": CleverApiVersion.V3_1,
            "clever_district_tokens": [],
            "clever_client_id": sandbox.state.config.client_id,
            "clever_client_secret": SecretStr(sandbox.state.config.client_secret),
            "clever_tokens_refresh_seconds": 0,
        }
    )
    return sync_deps(configured, pool=pool)


async def _district(pool: asyncpg.Pool, district_id: str) -> dict[str, Any]:
    """The district as `GET /v1/districts/{id}` shows it."""
    shape = await pool.fetchval(
        f"SELECT {district_json('d')}::text FROM districts d WHERE d.id = $1", district_id
    )
    parsed: dict[str, Any] = orjson.loads(shape)
    return parsed


async def _age_runs(pool: asyncpg.Pool, district_id: str) -> None:
    """Make the district's runs an hour old: due for an events poll."""
    await pool.execute(
        "UPDATE sync_runs SET created_at = created_at - interval '1 hour' WHERE district_id = $1",
        district_id,
    )


async def test_a_rotated_token_is_renewed_once_and_the_run_goes_on(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _oauth_deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)

    old_token = district.token
    district.rotate_token()
    created = district.create("users", {"name": {"first": "Rotated"}}, role="student")
    outcome = await sync_district(
        deps, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.CLI
    )
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    assert await mirror_pool.fetchval("SELECT count(*) FROM users WHERE id = $1", created) == 1
    assert (await deps.tokens.token_for(district.id)).get_secret_value() == district.token
    assert district.token != old_token


async def test_a_rejected_configured_token_fails_the_run_with_token_rejected(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=mirror_pool
    )
    await sync_ok(deps, district=district)
    district.rotate_token()  # the configured token is now rejected; nothing names a new one
    outcome = await sync_district(deps, district.id, trigger=RunTrigger.CLI)
    assert outcome.status is RunStatus.FAILED
    assert f"token rejected for district {district.id}" in (outcome.error or "")
    assert (await _district(mirror_pool, district.id))["connection"] == "disconnected"
    assert (
        await mirror_pool.fetchval(
            "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NULL", district.id
        )
        == district.truth.counts()["users"]
    )


async def test_a_district_that_revokes_the_app_is_disconnected_then_reconnects(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = _oauth_deps(settings, tiny_sandbox, mirror_pool)
    await sync_ok(deps, district=district)
    users = await mirror_pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NULL", district.id
    )
    async with arq_queue(deps.settings) as queue:
        await forget_jobs(queue, [district.id])
        ctx = {"redis": queue, "sync": deps}
        try:
            district.revoke_token()
            await _age_runs(mirror_pool, district.id)
            # The scheduler finds no token for it: disconnected, nothing queued, data kept.
            assert await poll_events(ctx) == 0
            assert await schedule_full_syncs(ctx) == 0
            assert await queued_job(queue, district.id) is None
            shown = await _district(mirror_pool, district.id)
            assert (shown["connection"], shown["active"]) == ("disconnected", True)
            assert (
                await mirror_pool.fetchval(
                    "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NULL",
                    district.id,
                )
                == users
            )
            # A sync asked for anyway says why it cannot run.
            outcome = await sync_district(deps, district.id, trigger=RunTrigger.API)
            assert outcome.status is RunStatus.FAILED
            assert "no Clever token serves district" in (outcome.error or "")

            district.rotate_token()  # the district authorizes the app again
            await _age_runs(mirror_pool, district.id)
            assert await poll_events(ctx) == 1
            assert (await _district(mirror_pool, district.id))["connection"] == "connected"
            job = await queued_job(queue, district.id)
            assert job is not None and job.kwargs["mode"] == "incremental"
        finally:
            await forget_jobs(queue, [district.id])


async def test_a_paused_district_is_skipped_by_the_full_schedule_and_never_held(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=mirror_pool
    )
    await sync_ok(deps, district=district)
    district.pause(end="2099-08-15T00:00:00.000Z")
    # Summer: the SIS empties the district, which would trip the mass-change guard.
    district.unshare("users", 0.6, role="student")
    district.unshare("sections", 0.6)

    outcome = await sync_district(deps, district.id, trigger=RunTrigger.CLI)
    assert outcome.status is RunStatus.SUCCEEDED, (outcome.status, outcome.held_reason)
    assert outcome.counts["users"]["deactivated"] > 0
    shown = await _district(mirror_pool, district.id)
    assert (shown["state"], shown["paused"]) == ("paused", True)
    assert shown["pause_end"].startswith("2099-08-15")

    async with arq_queue(deps.settings) as queue:
        await forget_jobs(queue, [district.id])
        try:
            assert await schedule_full_syncs({"redis": queue, "sync": deps}) == 0
            assert await queued_job(queue, district.id) is None
            district.resume()
            await sync_ok(deps, district=district)
            assert (await _district(mirror_pool, district.id))["paused"] is False
            assert await schedule_full_syncs({"redis": queue, "sync": deps}) == 1
            run = await run_row(
                mirror_pool,
                await mirror_pool.fetchval(
                    "SELECT id FROM sync_runs WHERE district_id = $1"
                    " ORDER BY created_at DESC LIMIT 1",
                    district.id,
                ),
            )
            assert (run["status"], run["trigger"]) == ("queued", "schedule")
        finally:
            await forget_jobs(queue, [district.id])


async def test_metrics_show_each_districts_sync_figures(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district), pool=mirror_pool
    )
    # Every second request fails once: the full sync retries its way through.
    tiny_sandbox.state.set_faults(FaultConfig(error_every=2, error_statuses=(503,)))
    await sync_ok(deps, district=district)
    tiny_sandbox.state.set_faults(FaultConfig())
    district.create("users", {"name": {"first": "Metric"}}, role="student")
    outcome = await sync_district(
        deps, district.id, mode=RunMode.INCREMENTAL, trigger=RunTrigger.CLI
    )
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    runs = await mirror_pool.fetch(
        "SELECT * FROM sync_runs WHERE district_id = $1 ORDER BY created_at", district.id
    )

    async with mirror_pool.acquire() as connection:
        key = await create_key(connection, name="metrics", scopes=[Scope.READ])
        other = await create_key(
            connection, name="other", scopes=[Scope.READ], district_ids=["elsewhere"]
        )
    async with app_client(deps.settings) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {key.secret}"})
        anonymous = await client.get("/metrics")
        elsewhere = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {other.secret}"}
        )
    assert response.status_code == anonymous.status_code == elsewhere.status_code == 200
    # District ids are labels: only a key that may see the district gets its figures.
    assert "roster_http_requests_total" in anonymous.text
    assert district.id not in anonymous.text and district.id not in elsewhere.text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted({"district_id": district.id, **labels}.items()))))

    assert value("roster_sync_runs_total", mode="full", status="succeeded") == 1
    assert value("roster_sync_runs_total", mode="incremental", status="succeeded") == 1
    assert value("roster_sync_events_applied_total") == 1
    assert value("roster_clever_requests_total") == sum(r["clever_requests"] for r in runs)
    failed = sum(r["clever_errors"].get("503", 0) for r in runs)
    assert failed > 0
    assert value("roster_clever_errors_total", status="503") == failed
    last_success = value("roster_sync_last_success_timestamp_seconds")
    assert last_success == max(r["finished_at"] for r in runs).timestamp()
    assert value("roster_district_connected") == 1
    assert value("roster_district_paused") == 0
    incremental = runs[-1]
    assert value("roster_sync_last_duration_seconds", mode="incremental") == pytest.approx(
        (incremental["finished_at"] - incremental["started_at"]).total_seconds()
    )


async def test_a_cancelled_sync_job_says_so_on_its_run(
    tiny_sandbox: RunningSandbox, settings: Settings, mirror_pool: asyncpg.Pool
) -> None:
    """arq cancels a job past its timeout (or when its worker stops) and records nothing."""
    district = tiny_sandbox.districts[0]
    deps = sync_deps(
        sandbox_settings(settings, sandbox=tiny_sandbox, district=district, page_size=5),
        pool=mirror_pool,
    )
    tiny_sandbox.state.set_faults(FaultConfig(latency_ms=50))
    async with mirror_pool.acquire() as connection:
        run_id = await runs.create_run(connection, district.id, RunMode.FULL, RunTrigger.API)
    job = asyncio.create_task(
        run_sync({"sync": deps}, district.id, mode="full", trigger="api", run_id=str(run_id))
    )
    await wait_for(
        lambda: _is_running(mirror_pool, run_id), what="the job's run to start", seconds=30
    )
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    run = await run_row(mirror_pool, run_id)
    assert (run["status"], run["error"]) == ("failed", CANCELLED)
    assert (
        await mirror_pool.fetchval("SELECT count(*) FROM users WHERE district_id = $1", district.id)
        == 0
    )


async def _is_running(pool: asyncpg.Pool, run_id: uuid.UUID) -> bool | None:
    status = await pool.fetchval("SELECT status FROM sync_runs WHERE id = $1", run_id)
    return True if status == "running" else None
