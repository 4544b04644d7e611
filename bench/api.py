"""Scenario `api`: the roster API at 32 concurrent clients beside `pgbench`.

Two endpoints, `GET /v1/teachers/{id}/students` and `GET /v1/users/{id}/sections/by-term`,
read a district of the chosen size mirrored by the real full sync (the sandbox and
`roster sync` in child processes, as in `sync`), then vacuumed and analyzed. Each round,
for each endpoint:

* `pgbench` runs the statement the endpoint runs, prepared, at the same concurrency, each
  transaction for an id drawn from a fixed sample of real ids (kept in a table);
* `roster api` (uvicorn) with 1, then 2 worker processes answers a load generator in a
  process of its own: 32 keep-alive connections in a closed loop, each request for an id
  drawn from the same sample, with a valid API key and the default key cache. Every
  response must be 200, and a sample of the bodies must parse into the documented shape.

Every run has a warm-up before its measured window. Beside latency and throughput, the CPU
each part used in the window (API processes, Postgres, the load generator, the rest of the
machine) shows where a request's time goes on a machine whose cores are the limit.

The load generator is this module run as `python -m bench.api`: a minimal HTTP/1.1 client
over asyncio streams, because a full client costs as much CPU as the server it measures.

Syncing an M district takes minutes, so `--keep-database` keeps the synced database
(`roster_bench_api_<size>`) and later runs with the flag reuse it while it is current.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic.script import ScriptDirectory

from app.api.keys import Scope as KeyScope
from app.api.keys import create_key
from app.migrations import alembic_config
from app.mirror.queries.collections import Scope
from app.mirror.queries.roster import teacher_students_sql, user_sections_by_term_sql
from app.settings import to_asyncpg_url
from bench import report
from bench.databases import ScratchDatabase, connect, scratch_database, with_database
from bench.options import BenchOptions
from bench.processes import ChildRun, cpu_seconds, free_port, run_child, stop, tail
from bench.processes import sandbox_process as start_sandbox
from bench.sync import run_sync, worker_environment

# The targets the figures are held to.
MAX_P99_SECONDS = 0.025
MIN_PGBENCH_RATIO = 0.3
CLIENTS = 32
PGBENCH_THREADS = 2
WORKER_COUNTS = (1, 2)
# Ids per sample (fewer in districts too small to have them): enough that the load spreads
# over the district, few enough to hand over.
SAMPLE_SIZE = 1000
SAMPLE_TABLE = "bench_sample_ids"
# Bodies kept per run to parse after the measured window (parsing inside it would cost
# the load generator CPU that the server then lacks).
BODIES_CHECKED = 200
# The endpoints' default page size is 100; the statement asks for one more row.
PAGE_ROWS = 101
SCOPE = Scope(district_ids=None, include_inactive=False, sensitive=False)
PGBENCH_APPLICATION = "roster-bench-pgbench"
STARTUP_SECONDS = 60.0
CPU_POLL_SECONDS = 0.25
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Endpoint:
    """A measured endpoint: its path, the statement it runs, the ids it is asked for."""

    name: str
    path: str
    """With `{id}` where the id goes."""
    sample: str
    """Which sample of ids (`SAMPLES`) requests draw from."""
    statement: str
    """The endpoint's SQL with `$1` the id; further parameters in `arguments`."""
    item_keys: tuple[str, ...]
    """Keys every element of the body's `data` list has."""
    paged: bool
    """Whether the body has a `next_cursor`."""
    arguments: dict[str, int] = field(default_factory=dict)
    """`$2`, `$3`... in order, by the names pgbench gives them."""

    def malformed(self, body: Any) -> str | None:
        """What is wrong with a parsed body of this endpoint, if anything."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return "no `data` list"
        if self.paged and "next_cursor" not in body:
            return "no `next_cursor`"
        for item in body["data"]:
            if not isinstance(item, dict) or not set(self.item_keys) <= item.keys():
                return f"an element of `data` without {', '.join(self.item_keys)}"
        return None

    def pgbench_script(self, sample_size: int) -> str:
        """The statement as a pgbench script: the id looked up in the sample table by a
        random row number, the other parameters as pgbench variables (bound when prepared)."""
        lookup = f"(SELECT id FROM {SAMPLE_TABLE} WHERE sample = '{self.sample}' AND n = :n)"
        values = [lookup, *(f":{name}" for name in self.arguments)]
        statement = re.sub(
            r"\$(\d+)", lambda match: values[int(match.group(1)) - 1], self.statement
        )
        settings = [f"\\set n random(1, {sample_size})"]
        settings += [f"\\set {name} {value}" for name, value in self.arguments.items()]
        return "\n".join([*settings, statement.strip() + ";", ""])


ENDPOINTS = (
    Endpoint(
        name="teachers/{id}/students",
        path="/v1/teachers/{id}/students",
        sample="teachers",
        statement=teacher_students_sql(SCOPE, paged=False),
        item_keys=("id", "section_ids"),
        paged=True,
        arguments={"page_rows": PAGE_ROWS},
    ),
    Endpoint(
        name="users/{id}/sections/by-term",
        path="/v1/users/{id}/sections/by-term",
        sample="users",
        statement=user_sections_by_term_sql(SCOPE, role=None),
        item_keys=("term", "current", "sections"),
        paged=False,
    ),
)

# Ids in a stable pseudo-random order (md5), so every run draws from the same sample.
SAMPLES: dict[str, str] = {
    # Teachers of at least one live section with a current enrollment.
    "teachers": """
        SELECT st.teacher_id FROM section_teachers st
        JOIN sections s ON s.id = st.section_id AND s.deleted_at IS NULL
        JOIN users u ON u.id = st.teacher_id AND u.deleted_at IS NULL
        WHERE st.deleted_at IS NULL AND EXISTS (
            SELECT 1 FROM enrollments e WHERE e.section_id = st.section_id AND e.ended_at IS NULL)
        GROUP BY st.teacher_id ORDER BY md5(st.teacher_id) LIMIT $1
    """,
    # Live students and teachers, half each: teachers have the larger answers.
    "users": """
        (SELECT id FROM users WHERE deleted_at IS NULL AND 'student' = ANY(roles)
         ORDER BY md5(id) LIMIT $1::int / 2)
        UNION ALL
        (SELECT id FROM users WHERE deleted_at IS NULL AND 'teacher' = ANY(roles)
         ORDER BY md5(id) LIMIT $1::int - $1::int / 2)
    """,
}


# --- the mirrored database ---------------------------------------------------------------


async def _admin(server_url: str, statement: str) -> None:
    connection = await connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _is_current(server_url: str, database: ScratchDatabase) -> bool:
    """Whether `database` exists, holds a succeeded sync and is migrated to head."""
    admin = await connect(server_url)
    try:
        found = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database.name)
    finally:
        await admin.close()
    if not found:
        return False
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    connection = await connect(database.url)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        synced = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE status = 'succeeded')"
        )
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()
    return bool(synced) and version == head


async def _mirror(options: BenchOptions, database: ScratchDatabase) -> None:
    """Sync the sandbox district into `database` with `roster sync`; vacuum and analyze."""
    log_dir = options.log_dir
    with start_sandbox(options.size, log_dir=log_dir, startup_timeout=options.timeout) as sandbox:
        connection = await connect(database.url)
        try:
            env = worker_environment(database.url, options.redis_url, sandbox)
            log = log_dir / f"api-sync-{options.size}.log"
            synced = await run_sync(connection, sandbox, env, log, options.timeout)
        finally:
            await connection.close()
    print(f"synced the district in {report.seconds(synced.wall_seconds)}", flush=True)
    connection = await connect(database.url)
    try:
        # As a database that has been serving for a while would be (autovacuum may be off).
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


@asynccontextmanager
async def mirrored_database(options: BenchOptions) -> AsyncIterator[ScratchDatabase]:
    """A database holding the sandbox district as `roster sync` mirrors it.

    Without `keep_database`, a scratch database dropped afterwards. With it, the kept one
    when it is current, else a new one, renamed into place only once the sync succeeded.
    """
    name = f"roster_bench_api_{options.size.lower()}"
    kept = ScratchDatabase(name, with_database(options.server_url, name))
    if options.keep_database and await _is_current(options.server_url, kept):
        print(f"reusing the synced database {kept.name}", flush=True)
        yield kept
        return
    async with scratch_database(options.server_url, "api") as fresh:
        await _mirror(options, fresh)
        if not options.keep_database:
            yield fresh
            return
        # The scratch block then drops a name that no longer exists, which is a no-op.
        await _admin(options.server_url, f'DROP DATABASE IF EXISTS "{kept.name}" WITH (FORCE)')
        await _admin(options.server_url, f'ALTER DATABASE "{fresh.name}" RENAME TO "{kept.name}"')
    print(f"kept the synced database as {kept.name}", flush=True)
    yield kept


async def draw_samples(connection: asyncpg.Connection) -> dict[str, list[str]]:
    """The id samples, also written to `SAMPLE_TABLE` (row numbers from 1) for pgbench."""
    samples = {
        name: [row[0] for row in await connection.fetch(query, SAMPLE_SIZE)]
        for name, query in SAMPLES.items()
    }
    empty = [name for name, ids in samples.items() if not ids]
    if empty:
        raise RuntimeError(f"the district has no ids for the samples {empty}")
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {SAMPLE_TABLE}"
        " (sample text, n int, id text NOT NULL, PRIMARY KEY (sample, n))"
    )
    async with connection.transaction():
        await connection.execute(f"TRUNCATE {SAMPLE_TABLE}")
        for name, ids in samples.items():
            await connection.execute(
                f"INSERT INTO {SAMPLE_TABLE} SELECT $1, n, id"
                " FROM unnest($2::text[]) WITH ORDINALITY AS u(id, n)",
                name,
                ids,
            )
    await connection.execute(f"VACUUM (ANALYZE) {SAMPLE_TABLE}")
    return samples


# --- CPU accounting --------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The fields after the command name, which may itself hold spaces: state is [0].
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by `pid` and each of its live descendants."""
    used: dict[int, float] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            used[current] = cpu_seconds(current)
            pending += _children(current)
        except OSError:
            continue
    return used


def machine_busy() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting) so far."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    # guest time is already counted in user time.
    return (sum(ticks[:8]) - idle) / _CLOCK_TICKS


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
            parent = int(_stat_fields(backend)[1])
            if "postgres" not in Path(f"/proc/{parent}/cmdline").read_text():
                return None
        except (OSError, ValueError):
            return None
        return cls(parent, database)

    def cpu(self) -> dict[int, float]:
        """CPU seconds used so far by each live backend of the database."""
        used: dict[int, float] = {}
        for pid in _children(self.postmaster):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_text().split()
                if self.database in title:
                    used[pid] = cpu_seconds(pid)
            except OSError:
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


# --- the load generator (its own process) -------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """What the load generator is told, as JSON on its standard input."""

    host: str
    port: int
    api_key: str
    endpoint: str
    """The name of the endpoint in ENDPOINTS, whose body shape is checked."""
    paths: list[str]
    clients: int
    warmup_seconds: float
    seconds: float
    seed: int = 1


@dataclass(frozen=True)
class LoadResult:
    """What the load generator saw, as JSON on its standard output."""

    requests: int
    """Requests started and answered inside the measured window."""
    seconds: float
    latencies_ms: dict[str, float]
    statuses: dict[str, int]
    """Every response's status, warm-up included."""
    all_requests: int
    body_bytes_mean: float
    bodies_checked: int
    bodies_malformed: list[str]
    cpu_seconds: float
    """The load generator's own CPU in the measured window."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


MEASURING, DONE = "measuring", "done"


def _request(spec: LoadSpec, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
        f"Authorization: Bearer {spec.api_key}\r\nAccept: application/json\r\n\r\n"
    ).encode()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"a response without content-length: {head[:200]!r}")


async def generate_load(spec: LoadSpec) -> LoadResult:
    """Drive the API from `spec.clients` keep-alive connections until the window ends.

    Prints MEASURING when the warm-up ends and DONE when the window does, so the parent
    can read CPU counters at the same moments.
    """
    requests = [_request(spec, path) for path in spec.paths]
    measure_from = time.perf_counter() + spec.warmup_seconds
    until = measure_from + spec.seconds
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    bodies: list[bytes] = []
    sizes: list[int] = []

    async def client(number: int) -> None:
        draw = random.Random(spec.seed * 1000 + number).choice
        reader, writer = await asyncio.open_connection(spec.host, spec.port)
        try:
            while (started := time.perf_counter()) < until:
                writer.write(draw(requests))
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                ended = time.perf_counter()
                statuses[int(head[9:12])] += 1
                if started >= measure_from and ended <= until:
                    latencies.append(ended - started)
                    sizes.append(len(body))
                    if len(latencies) % 50 == 0 and len(bodies) < BODIES_CHECKED:
                        bodies.append(body)
        finally:
            writer.close()

    async def announce() -> float:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        print(MEASURING, flush=True)
        cpu = time.process_time()
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        print(DONE, flush=True)
        return time.process_time() - cpu

    window = asyncio.create_task(announce())
    await asyncio.gather(*(client(n) for n in range(spec.clients)))
    cpu = await window
    endpoint = next(endpoint for endpoint in ENDPOINTS if endpoint.name == spec.endpoint)
    problems = [
        problem for body in bodies if (problem := endpoint.malformed(json.loads(body))) is not None
    ]
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=spec.seconds,
        latencies_ms=_percentiles_ms(latencies),
        statuses={str(status): n for status, n in sorted(statuses.items())},
        all_requests=sum(statuses.values()),
        body_bytes_mean=statistics.fmean(sizes) if sizes else 0.0,
        bodies_checked=len(bodies),
        bodies_malformed=problems[:5],
        cpu_seconds=cpu,
    )


def _percentiles_ms(ordered: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max and the mean of sorted latencies in seconds, in milliseconds."""
    if not ordered:
        return {}

    def rank(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]

    return {
        "p50": rank(0.50) * 1000,
        "p90": rank(0.90) * 1000,
        "p99": rank(0.99) * 1000,
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }


def main() -> None:
    """The load generator's process: a LoadSpec on stdin, a LoadResult on stdout."""
    spec = LoadSpec(**json.loads(sys.stdin.read()))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(generate_load(spec))
    else:
        # The cheaper event loop leaves more of the shared cores to the server measured.
        result = uvloop.run(generate_load(spec))
    print(json.dumps(asdict(result)), flush=True)


# --- the measured runs -----------------------------------------------------------------


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


@dataclass(frozen=True)
class ApiServer:
    pid: int
    host: str
    port: int
    workers: int

    @property
    def label(self) -> str:
        return f"api x{self.workers}"


def _log_end(path: Path) -> str:
    # JSON log lines carry whole tracebacks: the last few thousand characters are plenty.
    return tail(path, 5)[-3000:]


@contextmanager
def api_server(
    database_url: str,
    redis_url: str,
    workers: int,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[ApiServer]:
    """`roster api` in a child process, stopped after the block."""
    host, port = "127.0.0.1", free_port()
    env = (
        os.environ
        | {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
        | (extra_env or {})
    )
    argv = [sys.executable, "-m", "app.cli", "api", "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"roster api exited ({process.returncode}):\n{_log_end(log_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"roster api did not answer:\n{_log_end(log_path)}")
            try:
                if httpx.get(f"http://{host}:{port}/healthz", timeout=2.0).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield ApiServer(process.pid, host, port, workers)
    finally:
        stop(process)


async def measure_api(
    round_number: int,
    server: ApiServer,
    endpoint: Endpoint,
    ids: list[str],
    api_key: str,
    options: BenchOptions,
    backends: Backends | None,
) -> Measured:
    """Run the load generator against `server`; fail unless every answer was 200 and the
    bodies checked have the endpoint's shape."""
    spec = LoadSpec(
        host=server.host,
        port=server.port,
        api_key=api_key,
        endpoint=endpoint.name,
        paths=[endpoint.path.format(id=id_) for id_ in ids],
        clients=CLIENTS,
        warmup_seconds=options.warmup,
        seconds=options.seconds,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api", stdin=subprocess.PIPE, stdout=subprocess.PIPE
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
            f"{endpoint.name}: statuses {result.statuses}, {result.bodies_checked} bodies"
            f" checked, malformed: {result.bodies_malformed}"
        )
    return Measured(
        endpoint=endpoint.name,
        server=server.label,
        round=round_number,
        rate=result.rate,
        latencies_ms=result.latencies_ms,
        cpu=CpuUse.between(marks[MEASURING], marks[DONE], result.cpu_seconds),
        transactions=result.requests,
        detail={
            "statuses": result.statuses,
            "all_requests": result.all_requests,
            "body_bytes_mean": result.body_bytes_mean,
            "bodies_checked": result.bodies_checked,
        },
    )


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
        base += ["--client", str(CLIENTS), "--jobs", str(PGBENCH_THREADS), "--file", str(script)]
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
    figures = _percentiles_ms(latencies)
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


async def measure_round(
    number: int,
    database: ScratchDatabase,
    samples: dict[str, list[str]],
    api_key: str,
    options: BenchOptions,
    backends: Backends | None,
) -> list[Measured]:
    """pgbench, then the API at each worker count, for each endpoint."""
    logs = options.log_dir
    runs: list[Measured] = []
    for endpoint in ENDPOINTS:
        ids = samples[endpoint.sample]
        log = logs / f"api-pgbench-{endpoint.sample}-{options.size}.log"
        runs.append(
            await measure_pgbench(number, database.url, endpoint, len(ids), options, backends, log)
        )
        _progress(runs[-1])
    for workers in WORKER_COUNTS:
        log = logs / f"api-server-{workers}-{options.size}.log"
        with api_server(database.url, options.redis_url, workers, log) as server:
            for endpoint in ENDPOINTS:
                ids = samples[endpoint.sample]
                runs.append(
                    await measure_api(number, server, endpoint, ids, api_key, options, backends)
                )
                _progress(runs[-1])
    return runs


def _progress(run: Measured) -> None:
    latency = run.latencies_ms
    print(
        f"  round {run.round} {run.endpoint:<28} {run.server:<8}"
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
            created = await create_key(connection, name="bench api", scopes=[KeyScope.READ])
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
    figures = _figures(options, samples, runs)
    _print(options, figures)
    report.write_json(options.results_dir, "api", options.size, figures)
    return figures


# --- figures ---------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _figures(
    options: BenchOptions, samples: dict[str, list[str]], runs: list[Measured]
) -> dict[str, Any]:
    """Medians over rounds with their spread; ratios to pgbench of the same round."""
    servers = ["pgbench", *(f"api x{workers}" for workers in WORKER_COUNTS)]
    summary: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        by_server: dict[str, Any] = {}
        for server in servers:
            mine = [r for r in runs if r.endpoint == endpoint.name and r.server == server]
            baseline = {
                r.round: r.rate
                for r in runs
                if r.endpoint == endpoint.name and r.server == "pgbench"
            }
            by_server[server] = {
                "rate": _spread([r.rate for r in mine]),
                "p50_ms": _spread([r.latencies_ms["p50"] for r in mine]),
                "p99_ms": _spread([r.latencies_ms["p99"] for r in mine]),
                "average_ms": _spread([r.latencies_ms["mean"] for r in mine]),
                "ratio_to_pgbench": _spread([r.rate / baseline[r.round] for r in mine]),
                "cpu_ms_per_request": _cpu_figures(mine),
            }
        summary[endpoint.name] = by_server
    return {
        "clients": CLIENTS,
        "warmup_seconds": options.warmup,
        "seconds": options.seconds,
        "rounds": options.rounds,
        "sample_sizes": {name: len(ids) for name, ids in samples.items()},
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "pgbench_scripts": {e.name: e.pgbench_script(len(samples[e.sample])) for e in ENDPOINTS},
    }


def _cpu_figures(runs: Sequence[Measured]) -> dict[str, float | None]:
    """Median CPU milliseconds per request of each part, and the machine's busy share."""

    def median(pick: Callable[[Measured], float | None]) -> float | None:
        values = [value for r in runs if (value := pick(r)) is not None]
        return statistics.median(values) if values else None

    return {
        "server": median(lambda r: r.cpu_ms_per_request(r.cpu.server)),
        "postgres": median(lambda r: r.cpu_ms_per_request(r.cpu.postgres)),
        "client": median(lambda r: r.cpu_ms_per_request(r.cpu.client)),
        "other": median(lambda r: r.cpu_ms_per_request(r.cpu.other)),
        "machine_busy_cores": median(lambda r: r.cpu.machine / r.cpu.seconds),
    }


def _with_spread(spread: dict[str, float], unit: Callable[[float], str]) -> str:
    if spread["min"] == spread["max"]:
        return unit(spread["median"])
    return f"{unit(spread['median'])} ({unit(spread['min'])}-{unit(spread['max'])})"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _optional_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print(options: BenchOptions, figures: dict[str, Any]) -> None:
    m = report
    rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    for endpoint, by_server in figures["summary"].items():
        for server, f in by_server.items():
            is_api = server != "pgbench"
            ratio, p99 = f["ratio_to_pgbench"]["median"], f["p99_ms"]["median"]
            rows.append([
                endpoint if server == "pgbench" else "",
                server,
                _with_spread(f["rate"], lambda v: f"{v:,.0f}"),
                _with_spread(f["p50_ms"], _ms),
                _with_spread(f["p99_ms"], _ms),
                _with_spread(f["average_ms"], _ms),
                _with_spread(f["ratio_to_pgbench"], m.ratio) if is_api else "",
                m.verdict(ratio >= MIN_PGBENCH_RATIO) if is_api else "",
                m.verdict(p99 < MAX_P99_SECONDS * 1000) if is_api else "",
            ])  # fmt: skip
            cpu = f["cpu_ms_per_request"]
            cpu_rows.append([
                endpoint if server == "pgbench" else "",
                server,
                _optional_ms(cpu["server"]) if is_api else "",
                _optional_ms(cpu["postgres"]),
                _optional_ms(cpu["client"]),
                _optional_ms(cpu["other"]),
                f"{cpu['machine_busy_cores']:.2f}",
            ])  # fmt: skip
    spread = "median (min-max)" if options.rounds > 1 else "one round"
    m.print_table(
        f"api: size-{options.size} district, {CLIENTS} clients, {options.seconds:g} s"
        f" after {options.warmup:g} s warm-up, {options.rounds} round(s), {spread};"
        f" P5: API/pgbench >= {MIN_PGBENCH_RATIO:.2f}x, p99 < {MAX_P99_SECONDS * 1000:.0f} ms",
        ["endpoint", "server", "req/s", "p50 ms", "p99 ms", "mean ms", "API/pgbench",
         "P5 ratio", "P5 p99"],
        rows,
    )  # fmt: skip
    m.print_table(
        "api: CPU milliseconds per request in the measured window (median over rounds);"
        " client = load generator or pgbench; other = rest of the machine",
        ["endpoint", "server", "API processes", "Postgres", "client", "other", "busy cores"],
        cpu_rows,
    )


if __name__ == "__main__":
    main()
