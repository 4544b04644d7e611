"""Signed webhooks on `POST /v1/sync`: no API key, an HMAC of timestamp and body."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr

from app.api.webhook import TOLERANCE_SECONDS
from app.settings import Settings
from app.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.sync_support import (
    Json,
    arq_queue,
    assert_problem,
    bearer,
    forget_jobs,
    queued_job,
    restored_queue,
    run_ids,
)
from tests.support.app import app_client

SECRETS = ("first-secret", "rotated-in-secret")


@pytest.fixture(scope="module")
async def hooked(api_settings: Settings, mirrored: Mirrored) -> AsyncIterator[httpx.AsyncClient]:
    """The app with webhook secrets configured (two, as during a rotation)."""
    configured = api_settings.model_copy(
        update={"sync_webhook_secrets": [SecretStr(secret) for secret in SECRETS]}
    )
    async with app_client(configured) as client:
        yield client


@pytest.fixture(scope="module")
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    async with arq_queue(settings) as queue:
        yield queue


@pytest.fixture(autouse=True)
async def _restored(
    api_pool: asyncpg.Pool, queue: ArqRedis, mirrored: Mirrored
) -> AsyncIterator[None]:
    async with restored_queue(api_pool, queue, [mirrored.s.id, mirrored.other.id]):
        yield


def _body(district_id: str, mode: str = "full") -> bytes:
    return orjson.dumps({"district_id": district_id, "mode": mode})


def _signed(body: bytes, *, secret: str = SECRETS[0], at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


async def _deliver(api: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await api.post("/v1/sync", content=body, headers=headers)


def _run(response: httpx.Response, status: int) -> Json:
    assert response.status_code == status, (response.status_code, response.text)
    run: Json = response.json()
    return run


async def test_a_signed_delivery_queues_a_webhook_run(
    hooked: httpx.AsyncClient, mirrored: Mirrored, queue: ArqRedis
) -> None:
    body = _body(mirrored.s.id)
    run = _run(await _deliver(hooked, body, _signed(body)), 202)
    assert (run["district_id"], run["trigger"], run["status"]) == (
        mirrored.s.id,
        "webhook",
        "queued",
    )
    job = await queued_job(queue, mirrored.s.id)
    assert job is not None
    assert (job.kwargs["run_id"], job.kwargs["trigger"]) == (run["id"], "webhook")


async def test_the_unversioned_path_answers_as_the_v1_one(
    hooked: httpx.AsyncClient, mirrored: Mirrored, queue: ArqRedis
) -> None:
    body = _body(mirrored.s.id)
    headers = _signed(body)
    run = _run(await hooked.post("/sync", content=body, headers=headers), 202)
    assert (run["district_id"], run["trigger"]) == (mirrored.s.id, "webhook")
    # The same delivery on either path is one delivery: the replay is answered with its run.
    replay = _run(await _deliver(hooked, body, headers), 200)
    assert replay["id"] == run["id"]
    unsigned = await hooked.post(
        "/sync", content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert unsigned.headers["cache-control"] == "no-store"


async def test_the_rotated_in_secret_is_accepted_too(
    hooked: httpx.AsyncClient, mirrored: Mirrored
) -> None:
    body = _body(mirrored.other.id)
    run = _run(await _deliver(hooked, body, _signed(body, secret=SECRETS[1])), 202)
    assert run["trigger"] == "webhook"


async def test_timestamps_near_the_tolerance_edge_are_accepted(
    hooked: httpx.AsyncClient, mirrored: Mirrored
) -> None:
    body = _body(mirrored.s.id)
    early = _run(await _deliver(hooked, body, _signed(body, at=time.time() - 280)), 202)
    late = _run(await _deliver(hooked, body, _signed(body, at=time.time() + 280)), 200)
    assert late["id"] == early["id"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong secret", "does not match"),
        ("old timestamp", f"{TOLERANCE_SECONDS} s"),
        ("future timestamp", f"{TOLERANCE_SECONDS} s"),
        ("altered body", "does not match"),
        ("timestamp changed after signing", "does not match"),
        ("no signature", "needs both"),
        ("no timestamp", "needs both"),
        ("unsigned signature format", "v1=<hex>"),
    ],
)
async def test_bad_deliveries_are_401_and_start_nothing(
    hooked: httpx.AsyncClient,
    mirrored: Mirrored,
    api_pool: asyncpg.Pool,
    queue: ArqRedis,
    case: str,
    message: str,
) -> None:
    body = _body(mirrored.s.id)
    now = time.time()
    headers = {
        "wrong secret": lambda: _signed(body, secret="guessed-secret"),
        "old timestamp": lambda: _signed(body, at=now - TOLERANCE_SECONDS - 5),
        "future timestamp": lambda: _signed(body, at=now + TOLERANCE_SECONDS + 5),
        "altered body": lambda: _signed(_body(mirrored.other.id)),
        "timestamp changed after signing": lambda: (
            _signed(body, at=now - 10) | {TIMESTAMP_HEADER: str(int(now))}
        ),
        "no signature": lambda: {TIMESTAMP_HEADER: str(int(now))},
        "no timestamp": lambda: {SIGNATURE_HEADER: _signed(body)[SIGNATURE_HEADER]},
        "unsigned signature format": lambda: (
            _signed(body) | {SIGNATURE_HEADER: _signed(body)[SIGNATURE_HEADER].removeprefix("v1=")}
        ),
    }[case]()
    before = await run_ids(api_pool)

    problem = assert_problem(await _deliver(hooked, body, headers), 401)

    assert message in problem["detail"]
    assert await run_ids(api_pool) == before
    assert await queued_job(queue, mirrored.s.id) is None


async def test_neither_key_nor_signature_is_401(
    hooked: httpx.AsyncClient, mirrored: Mirrored
) -> None:
    body = _body(mirrored.s.id)
    response = await _deliver(hooked, body, {"Content-Type": "application/json"})
    assert_problem(response, 401)


async def test_a_replayed_delivery_gets_the_first_run_and_starts_nothing(
    hooked: httpx.AsyncClient, mirrored: Mirrored, api_pool: asyncpg.Pool, queue: ArqRedis
) -> None:
    district_id = mirrored.s.id
    body = _body(district_id)
    headers = _signed(body)
    first = _run(await _deliver(hooked, body, headers), 202)

    replayed = _run(await _deliver(hooked, body, headers), 200)
    assert replayed["id"] == first["id"]

    # Even once that run has ended, so that a new delivery would start a sync, the replay
    # starts nothing: it is answered with the run its first delivery got.
    await forget_jobs(queue, [district_id])
    await api_pool.execute(
        "UPDATE sync_runs SET status = 'succeeded', finished_at = now() WHERE id = $1",
        uuid.UUID(first["id"]),
    )
    before = await run_ids(api_pool)
    again = _run(await _deliver(hooked, body, headers), 200)
    assert (again["id"], again["status"]) == (first["id"], "succeeded")
    assert await run_ids(api_pool) == before
    assert await queued_job(queue, district_id) is None

    # A new delivery (newly signed) is not a replay.
    fresh = _run(await _deliver(hooked, body, _signed(body, at=time.time() + 1)), 202)
    assert fresh["id"] != first["id"]


async def test_a_delivery_that_was_refused_may_be_sent_again(
    hooked: httpx.AsyncClient, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    before = await run_ids(api_pool)
    for body, status in (
        (_body("5f0000000000000000000000"), 404),
        (_body(mirrored.s.id, "partial"), 422),
        (b'{"district_id": ', 422),
    ):
        headers = _signed(body)
        assert_problem(await _deliver(hooked, body, headers), status)
        assert_problem(await _deliver(hooked, body, headers), status)
    assert await run_ids(api_pool) == before


async def test_an_api_key_sent_with_a_signature_is_what_counts(
    hooked: httpx.AsyncClient, keys: Keys, mirrored: Mirrored
) -> None:
    body = _body(mirrored.s.id)
    assert_problem(await _deliver(hooked, body, _signed(body) | bearer(keys.read)), 403)
    run = _run(await _deliver(hooked, body, _signed(body) | bearer(keys.sync)), 202)
    assert run["trigger"] == "api"


async def test_without_configured_secrets_webhooks_are_refused(
    api: httpx.AsyncClient, mirrored: Mirrored, api_pool: asyncpg.Pool
) -> None:
    before = await run_ids(api_pool)
    body = _body(mirrored.s.id)
    problem = assert_problem(await _deliver(api, body, _signed(body)), 401)
    assert "not enabled" in problem["detail"]
    assert await run_ids(api_pool) == before


async def test_openapi_documents_the_webhook_headers_beside_the_bearer_scheme(
    hooked: httpx.AsyncClient,
) -> None:
    document = (await hooked.get("/openapi.json")).json()
    operation = document["paths"]["/v1/sync"]["post"]
    assert operation["operationId"] == "sync-create"
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert set(headers) == {TIMESTAMP_HEADER, SIGNATURE_HEADER}
    assert not any(parameter.get("required") for parameter in headers.values())
    assert {"ApiKey": []} in operation["security"] and {} in operation["security"]
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert {"200", "202", "401", "403", "404", "409", "422"} <= set(operation["responses"])
