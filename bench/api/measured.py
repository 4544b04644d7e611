"""One measured run: of pgbench, or of a server under the load generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.api.cpu import CpuUse


@dataclass(frozen=True)
class Measured:
    """One measured run of one endpoint: the API at some worker count, or pgbench."""

    endpoint: str
    server: str
    """`pgbench`, or `api xN` for N worker processes."""
    round: int
    rate: float
    latencies_ms: dict[str, float]
    cpu: CpuUse
    transactions: int
    detail: dict[str, Any] = field(default_factory=dict)

    def cpu_ms_per_request(self, part: float | None) -> float | None:
        if part is None or not self.transactions:
            return None
        return part / self.transactions * 1000
