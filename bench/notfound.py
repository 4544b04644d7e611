"""`notfound`: a 404 for another district's id costs what one for an unknown id costs.

A key limited to one district asks `teachers/{id}/students` (the costliest page to build)
for teachers of a district it may not see, and for ids nobody has, interleaved, one request
at a time over keep-alive HTTP to `roster api`. If the API built the page before checking
the district, the first would take measurably longer, and timing would tell which ids exist
elsewhere. Printed: median and p90 of each, their ratio, and a visible teacher's 200 as the
reference of what building the page costs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from app.api.keys import Scope, create_key
from bench import report
from bench.api.endpoints import SAMPLES, mirrored_database
from bench.api.servers import api_server
from bench.databases import connect
from bench.options import BenchOptions

PATH = "/v1/teachers/{id}/students"
SAMPLE_SIZE = 300
ROUNDS = 5
# A district id no record has: the key may see only it.
ELSEWHERE = "bench-elsewhere"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(seconds: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p90_ms": _percentile(seconds, 0.9) * 1000,
    }


Ask = tuple[str, str, list[str], int]
"""(label, API key, ids to ask for, the status every answer must have)."""


def _measure(base_url: str, asks: tuple[Ask, ...]) -> dict[str, list[float]]:
    """Seconds per request of each ask, interleaved, one request at a time."""
    timings: dict[str, list[float]] = {label: [] for label, *_ in asks}
    count = min(len(ids) for _, _, ids, _ in asks)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for round_number in range(ROUNDS + 1):  # round 0 warms up, unmeasured
            for position in range(count):
                for label, key, ids, status in asks:
                    started = time.perf_counter()
                    response = client.get(
                        PATH.format(id=ids[position]), headers={"Authorization": f"Bearer {key}"}
                    )
                    elapsed = time.perf_counter() - started
                    if response.status_code != status:
                        raise RuntimeError(f"{label}: {response.status_code} {response.text}")
                    if round_number:
                        timings[label].append(elapsed)
    return timings


async def run(options: BenchOptions) -> dict[str, Any]:
    async with mirrored_database(options) as database:
        connection = await connect(database.url)
        try:
            teachers = [row[0] for row in await connection.fetch(SAMPLES["teachers"], SAMPLE_SIZE)]
            limited = await create_key(
                connection, name="bench notfound", scopes=[Scope.READ], district_ids=[ELSEWHERE]
            )
            every = await create_key(connection, name="bench notfound all", scopes=[Scope.READ])
        finally:
            await connection.close()
        # Ids shaped like Clever's that no district has.
        unknown = [f"ffffffff{index:016x}" for index in range(len(teachers))]
        asks = (
            ("other district", limited.secret, teachers, 404),
            ("unknown", limited.secret, unknown, 404),
            ("visible", every.secret, teachers, 200),
        )
        log = options.log_dir / f"api-notfound-{options.size}.log"
        with api_server(database.url, options.redis_url, 1, log) as server:
            base_url = f"http://{server.host}:{server.port}"
            timings = await asyncio.to_thread(_measure, base_url, asks)
    figures: dict[str, Any] = {name: _summary(values) for name, values in timings.items()}
    figures["requests_each"] = len(timings["unknown"])
    figures["other_over_unknown_median"] = (
        figures["other district"]["median_ms"] / figures["unknown"]["median_ms"]
    )
    print(f"{figures['requests_each']} requests each, interleaved, one at a time:")
    for name in timings:
        print(
            f"  {name:>14}: median {figures[name]['median_ms']:.2f} ms,"
            f" p90 {figures[name]['p90_ms']:.2f} ms"
        )
    print(
        "  404 of another district's id / 404 of an unknown id (median):"
        f" {figures['other_over_unknown_median']:.2f}x"
    )
    report.write_json(options.results_dir, "notfound", options.size, figures)
    return figures
