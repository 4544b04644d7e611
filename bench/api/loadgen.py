"""The load generator, a process of its own: `python -m bench.api.loadgen`, a `LoadSpec` as
JSON on standard input, a `LoadResult` as JSON on standard output.

A minimal HTTP/1.1 client over asyncio streams (on uvloop when installed), because a full
client costs as much CPU as the server it measures. Two shapes of load:

* closed loop (`rate` 0): `clients` keep-alive connections each send a request as soon as
  the previous answer arrived; throughput is what the server manages;
* open loop (`rate` > 0): requests are due at a fixed total rate, spread evenly over
  `clients` connections; a latency runs from when the request was due, not when it could
  be sent, so a server falling behind shows in the tail (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.api.endpoints import ENDPOINTS

# Bodies kept per run to parse after the measured window (parsing inside it would cost
# the load generator CPU that the server then lacks).
BODIES_CHECKED = 200
MEASURING, DONE = "measuring", "done"


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
    rate: float = 0.0
    """Requests per second in all, open loop; 0: closed loop."""


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
    body_bytes_median: float
    bodies_checked: int
    bodies_malformed: list[str]
    cpu_seconds: float
    """The load generator's own CPU in the measured window."""
    late_sends: int = 0
    """Open loop: requests sent more than a millisecond after they were due, because their
    connection still waited for the previous answer."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


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
    """Drive the server from `spec.clients` keep-alive connections until the window ends.

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
    late = 0
    # Open loop: each connection's requests are due every `interval`, the connections
    # staggered so that the total is evenly spread.
    interval = spec.clients / spec.rate if spec.rate else 0.0

    async def client(number: int) -> None:
        nonlocal late
        draw = random.Random(spec.seed * 1000 + number).choice
        reader, writer = await asyncio.open_connection(spec.host, spec.port)
        due = time.perf_counter() + interval * number / spec.clients if interval else 0.0
        try:
            while True:
                now = time.perf_counter()
                if interval:
                    if due > now:
                        await asyncio.sleep(due - now)
                    elif now - due > 0.001:
                        late += due >= measure_from
                    started = due
                    due += interval
                else:
                    started = now
                if started >= until:
                    break
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
        latencies_ms=percentiles_ms(latencies),
        statuses={str(status): n for status, n in sorted(statuses.items())},
        all_requests=sum(statuses.values()),
        body_bytes_mean=statistics.fmean(sizes) if sizes else 0.0,
        body_bytes_median=statistics.median(sizes) if sizes else 0.0,
        bodies_checked=len(bodies),
        bodies_malformed=problems[:5],
        cpu_seconds=cpu,
        late_sends=late,
    )


def percentiles_ms(ordered: Sequence[float]) -> dict[str, float]:
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


if __name__ == "__main__":
    main()
