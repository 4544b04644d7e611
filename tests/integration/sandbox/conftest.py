"""Sandboxes served by uvicorn on a free loopback port, shared across a module or session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.config import DistrictConfig
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread

COLLECTIONS = ("districts", "schools", "users", "sections", "terms", "courses")


@pytest.fixture(scope="session")
def tiny_sandbox() -> Iterator[RunningSandbox]:
    """A read-only tiny district (tests must not change it)."""
    with run_in_thread(SandboxConfig.build(size="tiny")) as running:
        yield running


@pytest.fixture(scope="session")
def s_sandbox() -> Iterator[RunningSandbox]:
    """A read-only S district (tests must not change it)."""
    with run_in_thread(SandboxConfig.build(size="S", seed=11)) as running:
        yield running


@pytest.fixture
def fresh_sandbox() -> Iterator[RunningSandbox]:
    """Two tiny districts, the second with events disabled, for tests that change things."""
    config = SandboxConfig(
        districts=(
            DistrictConfig(size="tiny", seed=21),
            DistrictConfig(size="tiny", seed=22, events_enabled=False),
        )
    )
    with run_in_thread(config) as running:
        yield running


def client_for(running: RunningSandbox, token: str | None = None, **kwargs: Any) -> httpx.Client:
    """A synchronous HTTP client with a district's bearer token."""
    token = token if token is not None else running.districts[0].token
    return httpx.Client(
        base_url=running.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def admin_client(running: RunningSandbox) -> httpx.Client:
    """A client holding the admin secret."""
    return client_for(running, running.state.config.admin_secret)


def read_all(client: httpx.Client, path: str) -> tuple[list[dict[str, Any]], int]:
    """Follow `next` links to the end; returns every record and the number of requests."""
    records: list[dict[str, Any]] = []
    url: str | None = path
    requests = 0
    while url:
        response = client.get(url)
        requests += 1
        response.raise_for_status()
        body = response.json()
        records += [entry["data"] for entry in body["data"]]
        url = next((link["uri"] for link in body["links"] if link["rel"] == "next"), None)
    return records, requests
