"""Every injected fault is observable over real HTTP, and requests are counted per district."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.server import RunningSandbox
from tests.integration.sandbox.conftest import admin_client, client_for


def _set_faults(running: RunningSandbox, **faults: object) -> None:
    with admin_client(running) as client:
        assert client.put("/sandbox/faults", json=faults).status_code == 200
        client.post("/sandbox/stats/reset")


def test_latency(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, latency_ms=150)
    with client_for(fresh_sandbox) as client:
        started = time.perf_counter()
        assert client.get("/v3.0/terms").status_code == 200
        assert time.perf_counter() - started >= 0.14


def test_rate_limit_every_n_with_headers(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, rate_limit_every=3, retry_after=True, rate_limit_reset_seconds=2)
    with client_for(fresh_sandbox) as client:
        statuses = [client.get("/v3.0/terms") for _ in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 200, 200, 429]
    limited = statuses[2]
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-limit"] == "1200"
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time())
    assert int(limited.headers["retry-after"]) in (1, 2)
    assert "x-ratelimit-remaining" in statuses[0].headers


def test_server_error_bursts(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, error_every=5, error_burst=3)
    with client_for(fresh_sandbox) as client:
        statuses = [client.get("/v3.0/terms").status_code for _ in range(10)]
    assert statuses == [200, 200, 500, 502, 503] * 2


def test_truncated_json(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, truncate_every=2)
    with client_for(fresh_sandbox) as client:
        whole = client.get("/v3.0/users?limit=20")
        cut = client.get("/v3.0/users?limit=20")
    assert whole.status_code == cut.status_code == 200
    assert len(cut.content) < len(whole.content)
    with pytest.raises(ValueError):
        cut.json()


def test_dropped_connection(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, drop_every=2)
    with client_for(fresh_sandbox) as client:
        assert client.get("/v3.0/terms").status_code == 200
        with pytest.raises(httpx.TransportError):
            client.get("/v3.0/terms")
        assert client.get("/v3.0/terms").status_code == 200


def test_revoked_token(fresh_sandbox: RunningSandbox) -> None:
    district = fresh_sandbox.districts[0]
    _set_faults(fresh_sandbox, revoked_districts=[district.id])
    with client_for(fresh_sandbox) as client:
        response = client.get("/v3.0/districts")
    assert response.status_code == 401
    with client_for(fresh_sandbox, fresh_sandbox.districts[1].token) as client:
        assert client.get("/v3.0/districts").status_code == 200


def test_enforced_rate_limit(fresh_sandbox: RunningSandbox) -> None:
    _set_faults(fresh_sandbox, requests_per_minute=3, enforce_rate_limit=True)
    with client_for(fresh_sandbox) as client:
        statuses = [client.get("/v3.0/terms").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_requests_are_counted_per_district(fresh_sandbox: RunningSandbox) -> None:
    first, second = fresh_sandbox.districts
    _set_faults(fresh_sandbox, rate_limit_every=2)
    with client_for(fresh_sandbox) as client:
        for _ in range(3):
            client.get("/v3.0/terms")
    with client_for(fresh_sandbox, second.token) as client:
        client.get("/v3.0/terms")
    with client_for(fresh_sandbox, "bad") as client:
        client.get("/v3.0/terms")
    with admin_client(fresh_sandbox) as client:
        stats = client.get("/sandbox/stats").json()
    assert stats["total"] == 5
    assert stats["districts"][first.id]["requests"] == 3
    assert stats["districts"][first.id]["statuses"] == {"200": 2, "429": 1}
    assert stats["districts"][first.id]["faults"] == {"rate_limit": 1}
    assert stats["districts"][second.id]["requests"] == 1
    assert stats["districts"]["unauthenticated"]["statuses"] == {"401": 1}
    assert fresh_sandbox.state.stats.requests(first.id) == 3
