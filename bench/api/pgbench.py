"""The pgbench driver: the endpoint's statement run by pgbench at the same concurrency, the
ceiling the API is measured against (what Postgres does for the same answers)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from app.settings import to_asyncpg_url
from bench.api.cpu import Backends, CpuMark, CpuUse
from bench.api.endpoints import Endpoint
from bench.api.loadgen import percentiles_ms
from bench.api.measured import Measured
from bench.options import BenchOptions
from bench.processes import ChildRun, run_child, tail

PGBENCH_THREADS = 2
PGBENCH_APPLICATION = "roster-bench-pgbench"
CPU_POLL_SECONDS = 0.25


def pgbench_binary() -> str:
    """pgbench on PATH, else the newest one the Debian packages install."""
    found = shutil.which("pgbench")
    if found:
        return found
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pgbench"), key=lambda p: int(p.parts[-3])
    )
    if not installed:
        raise RuntimeError("pgbench not found: install postgresql-client or put it on PATH")
    return str(installed[-1])


def _pgbench_figure(output: str, pattern: str) -> float:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"pgbench printed no {pattern!r}:\n{output[-2000:]}")
    return float(match.group(1))


def _logged_latencies(directory: Path) -> list[float]:
    """Seconds each transaction took, sorted, from pgbench's `--log` files (one a thread;
    the third field is the latency in microseconds)."""
    return sorted(
        int(line.split()[2]) / 1_000_000
        for path in directory.glob("latency.*")
        for line in path.read_text().splitlines()
    )


def _pgbench(argv: list[str], env: dict[str, str], log_path: Path, timeout: float) -> ChildRun:
    child = run_child(argv, env=env, log_path=log_path, timeout=timeout)
    if child.returncode != 0:
        raise RuntimeError(f"pgbench exited {child.returncode}:\n{child.log_tail()}")
    return child


async def measure_pgbench(
    round_number: int,
    database_url: str,
    endpoint: Endpoint,
    sample_size: int,
    options: BenchOptions,
    backends: Backends | None,
    log_path: Path,
    clients: int,
) -> Measured:
    """A warm-up pgbench, then the measured one with every transaction's latency logged.

    Its sessions run in UTC like the API's, so `current_date` means the same day.
    """
    env = os.environ | {"PGAPPNAME": PGBENCH_APPLICATION, "PGOPTIONS": "-c timezone=UTC"}
    url = to_asyncpg_url(database_url)
    with tempfile.TemporaryDirectory(prefix="roster-bench-pgbench-") as name:
        directory = Path(name)
        script = directory / "script.sql"
        script.write_text(endpoint.pgbench_script(sample_size))
        base = [pgbench_binary(), "--no-vacuum", "--protocol=prepared"]
        base += ["--client", str(clients), "--jobs", str(PGBENCH_THREADS), "--file", str(script)]
        warmup = [*base, "--time", str(math.ceil(options.warmup)), url]
        await asyncio.to_thread(_pgbench, warmup, env, log_path, options.timeout)
        measured = [*base, "--time", str(math.ceil(options.seconds)), "--log"]
        measured += [f"--log-prefix={directory / 'latency'}", url]
        start = end = CpuMark.take(backends)
        running = asyncio.create_task(
            asyncio.to_thread(_pgbench, measured, env, log_path, options.timeout)
        )
        while not running.done():
            # pgbench's backends exit with it: its window ends at the last look at them.
            await asyncio.wait({running}, timeout=CPU_POLL_SECONDS)
            if not running.done():
                end = CpuMark.take(backends)
        child = running.result()
        latencies = await asyncio.to_thread(_logged_latencies, directory)
    output = tail(log_path, 40)
    failed = _pgbench_figure(output, r"number of failed transactions: (\d+)")
    if failed:
        raise RuntimeError(f"{failed:.0f} pgbench transactions failed:\n{output}")
    figures = percentiles_ms(latencies)
    figures["average"] = _pgbench_figure(output, r"latency average = ([\d.]+) ms")
    return Measured(
        endpoint=endpoint.name,
        server="pgbench",
        round=round_number,
        rate=_pgbench_figure(output, r"tps = ([\d.]+) \(without initial connection time\)"),
        latencies_ms=figures,
        cpu=CpuUse.between(start, end, client=child.cpu_seconds),
        transactions=len(latencies),
    )
