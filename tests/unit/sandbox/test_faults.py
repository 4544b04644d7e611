"""The fault schedule: which request of a district gets which fault."""

from __future__ import annotations

import pytest

from sandbox.faults import DROP, ERROR, RATE_LIMIT, TRUNCATE, FaultConfig, planned_fault


def test_no_faults_by_default() -> None:
    assert all(planned_fault(FaultConfig(), n) is None for n in range(1, 100))


def test_rate_limit_every_n_requests() -> None:
    config = FaultConfig(rate_limit_every=4)
    assert [n for n in range(1, 13) if planned_fault(config, n)] == [4, 8, 12]


def test_error_bursts_cycle_statuses() -> None:
    config = FaultConfig(error_every=10, error_burst=3)
    faults = {n: planned_fault(config, n) for n in range(1, 21)}
    assert {n for n, fault in faults.items() if fault} == {8, 9, 10, 18, 19, 20}
    assert [faults[n] for n in (8, 9, 10)] == [(ERROR, 500), (ERROR, 502), (ERROR, 503)]


def test_drop_wins_over_truncation() -> None:
    config = FaultConfig(drop_every=6, truncate_every=3)
    assert planned_fault(config, 3) == (TRUNCATE, 200)
    assert planned_fault(config, 6) == (DROP, 0)
    assert planned_fault(FaultConfig(rate_limit_every=1), 1) == (RATE_LIMIT, 429)


def test_merged_validates_names_and_values() -> None:
    config = FaultConfig().merged({"error_statuses": [503], "revoked_districts": ["d"]})
    assert config.error_statuses == (503,)
    assert config.revoked_districts == frozenset({"d"})
    assert config.to_dict()["revoked_districts"] == ["d"]
    with pytest.raises(ValueError, match="unknown"):
        FaultConfig().merged({"explode": 1})
    with pytest.raises(ValueError):
        FaultConfig().merged({"error_burst": 0})
