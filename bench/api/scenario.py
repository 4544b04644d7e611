"""Scenario `api`: the two hot reads served by `roster api`, beside their ceilings.

`GET /v1/teachers/{id}/students` and `GET /v1/users/{id}/sections/by-term` read a district
of the chosen size (`bench.api.endpoints`). Each round, for each endpoint:

* `pgbench` runs the statement the endpoint runs, prepared, at the same concurrency, each
  transaction for an id drawn from a fixed sample of real ids (`bench.api.pgbench`);
* `roster api` answers the load generator (`bench.api.loadgen`, a process of its own):
  32 keep-alive connections in a closed loop, each request for an id drawn from the same
  sample, with a valid key and the default settings, with 1 and with 2 worker processes;
  then with 1 process keeping no answers in memory (`API_ANSWER_CACHE_MB=0`), so that every
  answer is read from Postgres. Every response must be 200, and a sample of the bodies must
  parse into the documented shape;
* a minimal FastAPI app on the same uvicorn answers a real answer of the median size as a
  fixed body (`bench.api.minimal`): what framework and server cost when the work is gone;
* open loop: requests due at 500/s over 50 connections, latency counted from when each was
  due, against `roster api` (1 process) with and without kept answers.

The sample's ids are few enough (1,000) that their answers fit in the memory each process
keeps, so after the warm-up the first figures are mostly answers from memory, as a polling
client's would be; the `uncached` ones are the cost of a read from Postgres.

Every run has a warm-up before its measured window. Beside latency and throughput, the CPU
each part used in the window (API processes, Postgres, the load generator, the rest of the
machine) shows where a request's time goes on a machine whose cores are the limit
(`bench.api.cpu`). The tables are `bench.api.figures`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
from dataclasses import asdict
from typing import Any

import httpx

from app.api.keys import Scope, create_key
from bench import report
from bench.api import figures
from bench.api.cpu import Backends, CpuMark, CpuUse
from bench.api.endpoints import ENDPOINTS, Endpoint, draw_samples, mirrored_database
from bench.api.loadgen import DONE, MEASURING, LoadResult, LoadSpec
from bench.api.measured import Measured
from bench.api.pgbench import measure_pgbench
from bench.api.servers import STARTUP_SECONDS, ApiServer, api_server, minimal_server
from bench.databases import ScratchDatabase, connect
from bench.options import BenchOptions

CLIENTS = 32
OPEN_LOOP_RATE = 500.0
OPEN_LOOP_CLIENTS = 50
UNCACHED = {"API_ANSWER_CACHE_MB": "0"}
# Answers fetched to find one of the median size for the minimal app.
MEDIAN_CANDIDATES = 60


async def measure_load(
    round_number: int,
    server: ApiServer,
    endpoint: Endpoint,
    paths: list[str],
    api_key: str,
    options: BenchOptions,
    backends: Backends | None,
    *,
    clients: int = CLIENTS,
    rate: float = 0.0,
) -> Measured:
    """Run the load generator against `server`; fail unless every answer was 200 and the
    bodies checked have the endpoint's shape."""
    spec = LoadSpec(
        host=server.host,
        port=server.port,
        api_key=api_key,
        endpoint=endpoint.name,
        paths=paths,
        clients=clients,
        warmup_seconds=options.warmup,
        seconds=options.seconds,
        rate=rate,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api.loadgen",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(asdict(spec)).encode())
    process.stdin.close()
    marks: dict[str, CpuMark] = {}
    try:
        async with asyncio.timeout(options.warmup + options.seconds + STARTUP_SECONDS):
            while len(marks) < 2:
                line = (await process.stdout.readline()).decode().strip()
                if not line:
                    raise RuntimeError("the load generator stopped early (see above)")
                marks[line] = CpuMark.take(backends, server.pid)
            output = await process.stdout.read()
            returncode = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if returncode != 0:
        raise RuntimeError(f"the load generator exited {returncode}")
    result = LoadResult(**json.loads(output))
    if set(result.statuses) != {"200"} or result.bodies_malformed or not result.bodies_checked:
        raise RuntimeError(
            f"{endpoint.name} on {server.label}: statuses {result.statuses},"
            f" {result.bodies_checked} bodies checked, malformed: {result.bodies_malformed}"
        )
    label = server.label if not rate else f"{server.label} @{rate:.0f}/s"
    return Measured(
        endpoint=endpoint.name,
        server=label,
        round=round_number,
        rate=result.rate,
        latencies_ms=result.latencies_ms,
        cpu=CpuUse.between(marks[MEASURING], marks[DONE], result.cpu_seconds),
        transactions=result.requests,
        detail={
            "statuses": result.statuses,
            "all_requests": result.all_requests,
            "body_bytes_mean": result.body_bytes_mean,
            "body_bytes_median": result.body_bytes_median,
            "bodies_checked": result.bodies_checked,
            "late_sends": result.late_sends,
            "open_loop_rate": rate,
        },
    )


def _paths(endpoint: Endpoint, ids: list[str]) -> list[str]:
    return [endpoint.path.format(id=id_) for id_ in ids]


async def median_body(server: ApiServer, endpoint: Endpoint, ids: list[str], key: str) -> bytes:
    """A real answer of the endpoint of about the median size of the sample's answers."""
    async with httpx.AsyncClient(
        base_url=f"http://{server.host}:{server.port}",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        bodies = [
            (await client.get(path)).content for path in _paths(endpoint, ids[:MEDIAN_CANDIDATES])
        ]
    middle = statistics.median_low(len(body) for body in bodies)
    return next(body for body in bodies if len(body) == middle)


async def measure_round(
    number: int,
    database: ScratchDatabase,
    samples: dict[str, list[str]],
    api_key: str,
    options: BenchOptions,
    backends: Backends | None,
) -> list[Measured]:
    """pgbench, then each server, for each endpoint."""
    logs = options.log_dir
    runs: list[Measured] = []

    async def load(server: ApiServer, endpoint: Endpoint, **shape: Any) -> None:
        paths = _paths(endpoint, samples[endpoint.sample])
        runs.append(
            await measure_load(number, server, endpoint, paths, api_key, options, backends, **shape)
        )
        _progress(runs[-1])

    for endpoint in ENDPOINTS:
        ids = samples[endpoint.sample]
        log = logs / f"api-pgbench-{endpoint.sample}-{options.size}.log"
        runs.append(
            await measure_pgbench(
                number, database.url, endpoint, len(ids), options, backends, log, CLIENTS
            )
        )
        _progress(runs[-1])
    bodies: dict[str, bytes] = {}
    for workers, extra, label in (
        (1, {}, "api x1"),
        (2, {}, "api x2"),
        (1, UNCACHED, "api x1 uncached"),
    ):
        log = logs / f"api-server-{label.replace(' ', '-')}-{options.size}.log"
        with api_server(
            database.url, options.redis_url, workers, log, extra_env=extra, label=label
        ) as server:
            for endpoint in ENDPOINTS:
                await load(server, endpoint)
                if workers == 1:
                    await load(server, endpoint, clients=OPEN_LOOP_CLIENTS, rate=OPEN_LOOP_RATE)
                if label == "api x1":
                    bodies[endpoint.name] = await median_body(
                        server, endpoint, samples[endpoint.sample], api_key
                    )
    for endpoint in ENDPOINTS:
        log = logs / f"api-minimal-{endpoint.sample}-{options.size}.log"
        with minimal_server(bodies[endpoint.name], log) as server:
            paths = [f"/v1/minimal/{id_}" for id_ in samples[endpoint.sample]]
            runs.append(
                await measure_load(number, server, endpoint, paths, api_key, options, backends)
            )
            _progress(runs[-1])
    return runs


def _progress(run: Measured) -> None:
    latency = run.latencies_ms
    print(
        f"  round {run.round} {run.endpoint:<28} {run.server:<22}"
        f" {run.rate:8,.0f}/s  p50 {latency['p50']:6.2f} ms  p99 {latency['p99']:6.2f} ms",
        flush=True,
    )


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its tables, save its figures."""
    runs: list[Measured] = []
    async with mirrored_database(options) as database:
        connection = await connect(database.url)
        try:
            samples = await draw_samples(connection)
            created = await create_key(connection, name="bench api", scopes=[Scope.READ])
            backend = await connection.fetchval("SELECT pg_backend_pid()")
            backends = Backends.of(backend, database.name)
            size = await connection.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            )
        finally:
            await connection.close()
        print(
            f"database {database.name} ({size}); samples of"
            f" {', '.join(f'{len(ids)} {name}' for name, ids in samples.items())};"
            f" {CLIENTS} clients, {options.warmup:g} s warm-up, {options.seconds:g} s"
            f" measured, {options.rounds} round(s)",
            flush=True,
        )
        for number in range(1, options.rounds + 1):
            runs += await measure_round(
                number, database, samples, created.secret, options, backends
            )
    summary = figures.summarize(options, samples, runs, CLIENTS)
    figures.print_tables(options, summary, CLIENTS)
    report.write_json(options.results_dir, "api", options.size, summary)
    return summary
