"""What every scenario is told: the size, the servers, where results go, time limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchOptions:
    size: str
    """Sandbox district size: tiny, S, 50k, M, L or XL."""
    server_url: str
    """A Postgres URL on which scratch databases may be created."""
    redis_url: str
    """Handed to `roster` processes, which refuse to start without one (syncs do not use it)."""
    results_dir: Path = RESULTS_DIR
    timeout: float = 3600.0
    """Longest any one step (a sync, a sandbox start-up) may run before it is killed."""
    top: int = 25
    """Rows of the profile's tables."""
    cprofile: bool = True
    """Whether `profile` also runs a re-sync under cProfile."""
    seconds: float = 20.0
    """`api`: length of each measured window."""
    warmup: float = 5.0
    """`api`: load before each measured window, not measured."""
    rounds: int = 3
    """`api`: how many times every measurement is repeated, for its spread."""
    keep_database: bool = False
    """`api`: keep the synced database for later runs, and reuse the kept one."""
    pin_cpus: frozenset[int] | None = frozenset({0})
    """`sync`: also sync with the `roster sync` process pinned to these cores (Postgres and
    the sandbox unpinned): what the design gets from one core; None skips those runs."""
    compare_source: Path | None = None
    """`sync`: another checkout whose `roster sync` also makes a cold sync, against the same
    COPY baseline (what a change costs, measured in one run)."""

    @property
    def log_dir(self) -> Path:
        return self.results_dir / "logs"
