"""A real `roster worker` sends a run's changes to a webhook: right after the run, signed,
retried after a failure with the same delivery id."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import asyncpg
import pytest
from arq.connections import ArqRedis

from app.history import webhooks
from app.sync.queue import request_sync
from app.sync.runs import RunMode, RunTrigger
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.e2e.workers import Workers
from tests.integration.sync_sandbox.support import run_row, wait_for
from tests.support.receiver import SECRET, Receiver
from tests.support.server import serve_in_thread

_seeds = itertools.count(701)


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=next(_seeds))) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_in_thread(receiver.app()) as url:
        receiver.url = url
        yield receiver


async def test_the_worker_delivers_a_runs_changes_and_retries_a_failure(
    sandbox: RunningSandbox,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    workers: Workers,
    receiver: Receiver,
) -> None:
    district = sandbox.districts[0]
    async with pool.acquire() as connection:
        await webhooks.create(
            connection,
            url=f"{receiver.url}/hook",
            secret=SECRET,
            entities=["sections"],
            district_ids=[district.id],
            actor="e2e",
        )
    receiver.script = [500]
    request = await request_sync(
        arq_redis, pool, district.id, mode=RunMode.FULL, trigger=RunTrigger.API
    )
    assert request.run_id is not None
    workers.start(
        sandbox=sandbox,
        district=district,
        extra_env={"WEBHOOK_RETRY_BASE_SECONDS": "0.5", "WEBHOOK_TIMEOUT_SECONDS": "5"},
    )

    async def delivered() -> bool | None:
        return True if receiver.kept else None

    await wait_for(delivered, what="the delivery at the receiver", diagnostics=workers.logs)
    run = await run_row(pool, request.run_id)
    assert run["status"] == "succeeded", run["error"]
    [body] = receiver.kept.values()
    sections = {section["id"] for section in district.iter_records("sections")}
    assert {change["id"] for change in body["changes"]} == sections
    assert {(change["op"], change["run_id"]) for change in body["changes"]} == {
        ("created", str(request.run_id))
    }
    # The first attempt got a 500: the same delivery came again.
    assert receiver.attempts == [body["delivery_id"]] * 2
    assert receiver.bad_signatures == 0
    row = await pool.fetchrow(
        "SELECT status, attempts, last_status_code FROM webhook_deliveries WHERE id = $1::uuid",
        body["delivery_id"],
    )
    assert row is not None
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("succeeded", 2, 204)
