"""Scenario `load`: the main reads at 32 clients, alone and while a full sync runs.

A district is mirrored by a cold `roster sync`; `roster api` serves it. 32 asyncio clients
over loopback mix the main reads (a student's sections by term, a teacher's students, a
section, a page of users) for `--seconds`; then 5 % of the district changes in the sandbox
and the same load runs for as long as a full re-sync (`roster sync`) takes. Every answer
must be a 200, and every section read during the sync must be the section as it was before
the sync or as it is after it, never a mix of the two (names, teachers and students
compared). The figures: requests, errors, p50/p99 in both phases.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import httpx
import orjson

from app.api.keys import Scope, create_key
from bench import report
from bench.api.endpoints import draw_samples
from bench.api.servers import api_server
from bench.databases import connect, scratch_database
from bench.history import change_share
from bench.options import BenchOptions
from bench.processes import sandbox_process as start_sandbox
from bench.sync import run_sync, worker_environment

CLIENTS = 32
# Sections whose answers are compared before, during and after the sync.
WATCHED_SECTIONS = 200


async def run(options: BenchOptions) -> dict[str, Any]:
    with start_sandbox(
        options.size, log_dir=options.log_dir, startup_timeout=options.timeout
    ) as sandbox:
        async with scratch_database(options.server_url, "load") as database:
            connection = await connect(database.url)
            try:
                env = worker_environment(database.url, options.redis_url, sandbox)
                log = options.log_dir / "load-sync.log"
                await run_sync(connection, sandbox, env, log, options.timeout)
                key = (await create_key(connection, name="load", scopes=[Scope.READ])).secret
                samples = await draw_samples(connection)
                sections = [
                    row["id"]
                    for row in await connection.fetch(
                        "SELECT id FROM sections WHERE deleted_at IS NULL ORDER BY id"
                    )
                ]
                with api_server(
                    database.url,
                    options.redis_url,
                    1,
                    options.log_dir / "load-api.log",
                ) as server:
                    base_url = f"http://{server.host}:{server.port}"
                    watched = sections[:: max(1, len(sections) // WATCHED_SECTIONS)]
                    paths = _paths(samples, watched)
                    quiet = await _load(base_url, key, paths, seconds=options.seconds)
                    before = await _sections(base_url, key, watched)
                    changed = await change_share(sandbox, connection)
                    sync = asyncio.create_task(
                        run_sync(connection, sandbox, env, log, options.timeout)
                    )
                    busy = await _load(base_url, key, paths, until=sync)
                    resync = await sync
                    after = await _sections(base_url, key, watched)
            finally:
                await connection.close()
    mixed = [
        section_id
        for section_id, seen in busy.pop("sections_seen").items()
        for body in seen
        if body not in (before.get(section_id), after.get(section_id))
    ]
    quiet.pop("sections_seen")
    figures = {
        "size": options.size,
        "clients": CLIENTS,
        "without_sync": quiet,
        "during_sync": busy,
        "resync_wall_seconds": resync.wall_seconds,
        "records_changed": changed,
        "sections_watched": len(before),
        "sections_changed_by_the_sync": sum(before[s] != after.get(s) for s in before),
        "sections_seen_mixed": mixed[:10],
    }
    _print(figures)
    report.write_json(options.results_dir, "load", options.size, figures)
    if mixed or quiet["errors"] or busy["errors"]:
        raise RuntimeError(f"errors or mixed sections: {figures}")
    return figures


def _paths(samples: dict[str, list[str]], sections: list[str]) -> list[str]:
    paths = [f"/v1/users/{u}/sections/by-term" for u in samples["users"]]
    paths += [f"/v1/teachers/{t}/students" for t in samples["teachers"]]
    paths += [f"/v1/sections/{s}" for s in sections]
    paths += ["/v1/users?limit=100"]
    return paths


def _section_view(body: bytes) -> bytes:
    """What must move together: the section's name, teachers and students."""
    section = orjson.loads(body)
    return orjson.dumps(
        [
            section.get("name"),
            sorted(t["id"] for t in section.get("teachers") or []),
            sorted(s["id"] for s in section.get("students") or []),
        ]
    )


async def _sections(base_url: str, key: str, ids: list[str]) -> dict[str, bytes]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        found = {}
        for section_id in ids:
            response = await client.get(f"/v1/sections/{section_id}")
            if response.status_code == 200:
                found[section_id] = _section_view(response.content)
        return found


async def _load(
    base_url: str,
    key: str,
    paths: list[str],
    *,
    seconds: float | None = None,
    until: asyncio.Task[Any] | None = None,
) -> dict[str, Any]:
    """CLIENTS clients reading `paths` at random until `seconds` pass or `until` is done."""
    latencies: list[float] = []
    # HTTP statuses, and the names of errors for requests that got no answer.
    statuses: Counter[int | str] = Counter()
    seen: dict[str, set[bytes]] = {}
    deadline = time.monotonic() + seconds if seconds is not None else float("inf")
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {key}"}

    def going() -> bool:
        return time.monotonic() < deadline and (until is None or not until.done())

    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_client(number: int) -> None:
            draw = random.Random(number).choice
            while going():
                path = draw(paths)
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as error:
                    statuses[
                        f"{type(error).__name__} after {time.perf_counter() - started:.1f} s"
                    ] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1
                if path.startswith("/v1/sections/") and response.status_code == 200:
                    seen.setdefault(path.rsplit("/", 1)[1], set()).add(
                        _section_view(response.content)
                    )

        started = time.monotonic()
        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
        elapsed = time.monotonic() - started
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 1),
        "errors": sum(n for status, n in statuses.items() if status != 200),
        "statuses": {str(status): n for status, n in sorted(statuses.items(), key=str)},
        "p50_ms": round(percentile(0.50), 1) if latencies else None,
        "p99_ms": round(percentile(0.99), 1) if latencies else None,
        "sections_seen": seen,
    }


def _print(figures: dict[str, Any]) -> None:
    rows = [
        [
            phase,
            report.count(figures[key]["requests"]),
            report.count(figures[key]["errors"]),
            report.rate(figures[key]["requests"] / figures[key]["seconds"]),
            f"{figures[key]['p50_ms']}",
            f"{figures[key]['p99_ms']}",
        ]
        for phase, key in (
            ("without a sync", "without_sync"),
            ("during a full sync", "during_sync"),
        )
    ]
    report.print_table(
        f"{CLIENTS} clients, main reads",
        ["phase", "requests", "errors", "req/s", "p50 ms", "p99 ms"],
        rows,
    )
    print(
        f"re-sync {figures['resync_wall_seconds']:.1f} s after {figures['records_changed']}"
        f" records changed; {figures['sections_watched']} sections watched,"
        f" {figures['sections_changed_by_the_sync']} changed by the sync,"
        f" {len(figures['sections_seen_mixed'])} seen mixed",
        flush=True,
    )
