"""The real Clever client against the sandbox over HTTP: full reads, edge cases, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.clever import (
    CleverAuthError,
    CleverClient,
    CleverEventsUnavailable,
    CleverRecord,
)
from sandbox.district import SandboxDistrict
from sandbox.faults import FaultConfig
from sandbox.server import RunningSandbox
from tests.integration.sandbox.conftest import COLLECTIONS


def make_client(
    running: RunningSandbox, district: SandboxDistrict, *, token: str | None = None
) -> CleverClient:
    """A client with a fast backoff, so injected faults cost milliseconds."""
    return CleverClient(
        token if token is not None else district.token,
        base_url=running.base_url,
        api_version="v3.1",
        district_id=district.id,
        timeout_seconds=10,
        max_retries=8,
        requests_per_minute=1_000_000,
        backoff_base_seconds=0.005,
        backoff_max_seconds=0.02,
    )


async def read_collection(
    client: CleverClient, collection: str, *, limit: int | None = None, role: str | None = None
) -> list[CleverRecord]:
    records: list[CleverRecord] = []
    async for page in client.iter_pages(collection, limit=limit, role=role):
        assert page.invalid == []
        records += page.records
    return records


@pytest.fixture
async def tiny_client(tiny_sandbox: RunningSandbox) -> AsyncIterator[CleverClient]:
    async with make_client(tiny_sandbox, tiny_sandbox.districts[0]) as client:
        yield client


@pytest.mark.parametrize("limit", [10_000, 4])
async def test_tiny_read_to_the_end_matches_truth(tiny_sandbox: RunningSandbox, limit: int) -> None:
    district = tiny_sandbox.districts[0]
    counts = district.truth.counts()
    async with make_client(tiny_sandbox, district) as client:
        for collection in COLLECTIONS:
            records = await read_collection(client, collection, limit=limit)
            assert [record.id for record in records] == district.truth.ids(collection)
            assert len(records) == counts[collection]


async def test_s_read_to_the_end_matches_truth(s_sandbox: RunningSandbox) -> None:
    district = s_sandbox.districts[0]
    counts = district.truth.counts()
    async with make_client(s_sandbox, district) as client:
        for collection in COLLECTIONS:
            records = await read_collection(client, collection)
            assert len(records) == counts[collection]
        teachers = await read_collection(client, "users", role="teacher", limit=500)
        assert len(teachers) == counts["teachers"]


async def test_every_edge_case_arrives_intact(
    tiny_sandbox: RunningSandbox, tiny_client: CleverClient
) -> None:
    truth = tiny_sandbox.districts[0].truth
    received: dict[str, dict[str, Any]] = {}
    for collection in COLLECTIONS:
        for record in await read_collection(tiny_client, collection):
            received[record.id] = record.raw
    cases = truth.edge_cases
    assert cases, "the tiny district plants every edge case"
    for name, record_id in cases.items():
        assert received.get(record_id) == truth.record(record_id), name


async def test_single_record_and_not_found(
    tiny_sandbox: RunningSandbox, tiny_client: CleverClient
) -> None:
    truth = tiny_sandbox.districts[0].truth
    section_id = truth.edge_cases["section_ten_teachers"]
    section = await tiny_client.get("sections", section_id)
    assert isinstance(section, CleverRecord)
    assert section.raw == truth.record(section_id)
    missing = await tiny_client.get("users", "5f0000000000000000000000")
    assert not isinstance(missing, CleverRecord)


async def test_bad_token_raises_the_auth_error(tiny_sandbox: RunningSandbox) -> None:
    district = tiny_sandbox.districts[0]
    async with make_client(tiny_sandbox, district, token="revoked") as client:
        with pytest.raises(CleverAuthError):
            await read_collection(client, "districts")


FAULTS = {
    "rate_limit": FaultConfig(rate_limit_every=3, rate_limit_reset_seconds=0),
    "rate_limit_retry_after": FaultConfig(rate_limit_every=4, retry_after=True,
                                          rate_limit_reset_seconds=0),
    "server_errors": FaultConfig(error_every=5, error_burst=2),
    "truncated_json": FaultConfig(truncate_every=3),
    "dropped_connections": FaultConfig(drop_every=3),
    "everything": FaultConfig(
        rate_limit_every=7, rate_limit_reset_seconds=0, error_every=11, error_burst=2,
        truncate_every=5, drop_every=13,
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_client_survives_injected_faults(fresh_sandbox: RunningSandbox, fault: str) -> None:
    district = fresh_sandbox.districts[0]
    fresh_sandbox.state.set_faults(FAULTS[fault])
    async with make_client(fresh_sandbox, district) as client:
        users = await read_collection(client, "users", limit=5)
        sections = await read_collection(client, "sections", limit=4)
    assert [user.id for user in users] == district.truth.ids("users")
    assert len(sections) == district.truth.counts()["sections"]
    served = fresh_sandbox.state.stats.snapshot()["districts"][district.id]
    assert sum(served["faults"].values()) > 0


async def test_revoked_token_mid_sync_raises_the_auth_error(fresh_sandbox: RunningSandbox) -> None:
    district = fresh_sandbox.districts[0]
    async with make_client(fresh_sandbox, district) as client:
        seen = 0
        with pytest.raises(CleverAuthError):
            async for _ in client.iter_pages("users", limit=10):
                seen += 1
                revoked = frozenset({district.id})
                fresh_sandbox.state.set_faults(FaultConfig(revoked_districts=revoked))
        assert seen == 1


async def test_events_through_the_client(fresh_sandbox: RunningSandbox) -> None:
    district, disabled = fresh_sandbox.districts
    async with make_client(fresh_sandbox, district) as client:
        cursor = await client.latest_event_id()
        assert cursor == district.newest_event_id()
        district.roll_over_terms()
        events = []
        async for page in client.iter_events(starting_after=cursor, limit=7):
            events += page.records
        cursor_seq = district.event_seq(cursor or "")
        assert cursor_seq is not None
        assert len(events) == district.events.total - cursor_seq - 1
        assert {event.record_type for event in events} == {"terms", "courses", "sections"}
        updated = next(event for event in events if event.action == "updated")
        assert set(updated.previous_attributes_merged) <= {"term_id", "course"}
        district.expire_events()
        with pytest.raises(CleverEventsUnavailable):
            async for _ in client.iter_events(starting_after=cursor):
                pass
    async with make_client(fresh_sandbox, disabled) as client:
        with pytest.raises(CleverEventsUnavailable):
            await client.latest_event_id()
