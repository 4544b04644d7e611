"""Where a request's CPU goes: the API processes, the database's backends, the load
generator, the rest of the machine, over one measured window (psutil reads the counters)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by `pid` and each of its live descendants."""
    used: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return used
    for process in processes:
        try:
            used[process.pid] = _cpu(process)
        except psutil.Error:
            continue
    return used


def machine_busy() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting) so far."""
    times = psutil.cpu_times()
    # guest time is already counted in user time.
    return float(sum(times) - times.idle - times.iowait - times.guest - times.guest_nice)


@dataclass(frozen=True)
class Backends:
    """The Postgres backends serving one database, found by their process titles
    (`postgres: 15/main: user database host(port) state`), so that other databases on a
    shared server do not count."""

    postmaster: int
    database: str

    @classmethod
    def of(cls, backend: int, database: str) -> Backends | None:
        """Those of the server that runs `backend`, when it runs on this machine and its
        processes can be read; else None."""
        try:
            parent = psutil.Process(backend).parent()
            if parent is None or "postgres" not in " ".join(parent.cmdline()):
                return None
        except psutil.Error:
            return None
        return cls(parent.pid, database)

    def cpu(self) -> dict[int, float]:
        """CPU seconds used so far by each live backend of the database."""
        used: dict[int, float] = {}
        try:
            children = psutil.Process(self.postmaster).children()
        except psutil.Error:
            return used
        for process in children:
            try:
                if self.database in " ".join(process.cmdline()).split():
                    used[process.pid] = _cpu(process)
            except psutil.Error:
                continue
        return used


@dataclass(frozen=True)
class CpuMark:
    """CPU used so far by the parts of a run, to subtract from a later mark."""

    at: float
    machine: float
    postgres: dict[int, float] | None
    server: dict[int, float]

    @classmethod
    def take(cls, backends: Backends | None, server_pid: int | None = None) -> CpuMark:
        return cls(
            at=time.perf_counter(),
            machine=machine_busy(),
            postgres=backends.cpu() if backends is not None else None,
            server=tree_cpu(server_pid) if server_pid is not None else {},
        )


def _used_since(start: dict[int, float], end: dict[int, float]) -> list[float]:
    """Per process alive at `end`: CPU seconds since `start` (all of it if born since)."""
    return sorted((used - start.get(pid, 0.0) for pid, used in end.items()), reverse=True)


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each part used over a window."""

    seconds: float
    machine: float
    postgres: float | None
    """The bench database's backends; those that exited inside the window are missed, so
    windows end while the clients are still connected."""
    server: float
    server_processes: list[float]
    """Per API process (the uvicorn supervisor and its workers), largest first."""
    client: float

    @classmethod
    def between(cls, start: CpuMark, end: CpuMark, client: float) -> CpuUse:
        processes = _used_since(start.server, end.server)
        postgres = None
        if start.postgres is not None and end.postgres is not None:
            postgres = sum(_used_since(start.postgres, end.postgres))
        return cls(
            seconds=end.at - start.at,
            machine=end.machine - start.machine,
            postgres=postgres,
            server=sum(processes),
            server_processes=processes,
            client=client,
        )

    @property
    def other(self) -> float | None:
        """Busy time of the rest of the machine: other databases and users, Postgres's own
        background processes, this process, the kernel."""
        if self.postgres is None:
            return None
        return max(0.0, self.machine - self.postgres - self.server - self.client)
