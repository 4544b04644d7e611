"""The `api` scenario's figures: medians over rounds with their spread, ratios to the ceilings
measured in the same round, the targets, and the tables."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from bench import report
from bench.api.endpoints import ENDPOINTS
from bench.api.measured import Measured
from bench.options import BenchOptions

# The targets the figures are held to.
MIN_PGBENCH_RATIO = 0.8
MIN_MINIMAL_RATIO = 0.5
MAX_OPEN_LOOP_P99_MS = 10.0
# The server whose figures the targets judge: one process, as deployed per core.
JUDGED = "api x1"


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _servers(runs: Sequence[Measured]) -> list[str]:
    """Every server measured, in the order first measured."""
    return list(dict.fromkeys(r.server for r in runs))


def summarize(
    options: BenchOptions, samples: dict[str, list[str]], runs: list[Measured], clients: int
) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        mine = [r for r in runs if r.endpoint == endpoint.name]
        pgbench = {r.round: r.rate for r in mine if r.server == "pgbench"}
        minimal = {r.round: r.rate for r in mine if r.server == "minimal"}
        by_server: dict[str, Any] = {}
        for server in _servers(mine):
            of = [r for r in mine if r.server == server]
            by_server[server] = {
                "rate": _spread([r.rate for r in of]),
                "p50_ms": _spread([r.latencies_ms["p50"] for r in of]),
                "p99_ms": _spread([r.latencies_ms["p99"] for r in of]),
                "average_ms": _spread([r.latencies_ms["mean"] for r in of]),
                "ratio_to_pgbench": _spread([r.rate / pgbench[r.round] for r in of]),
                "ratio_to_minimal": (
                    _spread([r.rate / minimal[r.round] for r in of]) if minimal else None
                ),
                "body_bytes_median": of[0].detail.get("body_bytes_median"),
                "open_loop_rate": of[0].detail.get("open_loop_rate", 0.0),
                "late_sends": sum(r.detail.get("late_sends", 0) for r in of),
                "cpu_ms_per_request": _cpu_figures(of),
            }
        summary[endpoint.name] = by_server
    return {
        "clients": clients,
        "warmup_seconds": options.warmup,
        "seconds": options.seconds,
        "rounds": options.rounds,
        "sample_sizes": {name: len(ids) for name, ids in samples.items()},
        "targets": {
            "p5a_min_ratio_to_pgbench": MIN_PGBENCH_RATIO,
            "p5b_min_ratio_to_minimal": MIN_MINIMAL_RATIO,
            "p5c_max_open_loop_p99_ms": MAX_OPEN_LOOP_P99_MS,
        },
        "goals": _goals(summary),
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "pgbench_scripts": {e.name: e.pgbench_script(len(samples[e.sample])) for e in ENDPOINTS},
    }


def _goals(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """P5a, P5b and P5c of each endpoint, for `JUDGED` with and without kept answers."""
    goals: dict[str, dict[str, Any]] = {}
    for endpoint, by_server in summary.items():
        for server in (JUDGED, f"{JUDGED} uncached"):
            closed = by_server.get(server)
            opened = next(
                (f for name, f in by_server.items() if name.startswith(f"{server} @")), None
            )
            if closed is None:
                continue
            minimal = closed["ratio_to_minimal"]
            goals[f"{endpoint} {server}"] = {
                "p5a_ratio_to_pgbench": closed["ratio_to_pgbench"]["median"],
                "p5b_ratio_to_minimal": minimal["median"] if minimal else None,
                "p5c_open_loop_p99_ms": opened["p99_ms"]["median"] if opened else None,
            }
    return goals


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


def _with_spread(spread: dict[str, float] | None, unit: Callable[[float], str]) -> str:
    if spread is None:
        return ""
    if spread["min"] == spread["max"]:
        return unit(spread["median"])
    return f"{unit(spread['median'])} ({unit(spread['min'])}-{unit(spread['max'])})"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _optional_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_tables(options: BenchOptions, figures: dict[str, Any], clients: int) -> None:
    m = report
    rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    for endpoint, by_server in figures["summary"].items():
        for position, (server, f) in enumerate(by_server.items()):
            served = server not in ("pgbench", "minimal")
            rows.append([
                endpoint if position == 0 else "",
                server,
                _with_spread(f["rate"], lambda v: f"{v:,.0f}"),
                _with_spread(f["p50_ms"], _ms),
                _with_spread(f["p99_ms"], _ms),
                _with_spread(f["ratio_to_pgbench"], m.ratio) if server != "pgbench" else "",
                _with_spread(f["ratio_to_minimal"], m.ratio) if served else "",
                f"{f['body_bytes_median'] / 1024:,.1f}" if f["body_bytes_median"] else "",
            ])  # fmt: skip
            cpu = f["cpu_ms_per_request"]
            cpu_rows.append([
                endpoint if position == 0 else "",
                server,
                _optional_ms(cpu["server"]) if server != "pgbench" else "",
                _optional_ms(cpu["postgres"]),
                _optional_ms(cpu["client"]),
                _optional_ms(cpu["other"]),
                f"{cpu['machine_busy_cores']:.2f}",
            ])  # fmt: skip
    spread = "median (min-max)" if options.rounds > 1 else "one round"
    m.print_table(
        f"api: size-{options.size} district, {clients} closed-loop clients (@N/s: open loop,"
        f" 50 connections), {options.seconds:g} s after {options.warmup:g} s warm-up,"
        f" {options.rounds} round(s), {spread}",
        ["endpoint", "server", "req/s", "p50 ms", "p99 ms", "/pgbench", "/minimal",
         "body KB"],
        rows,
    )  # fmt: skip
    goal_rows = []
    for name, goal in figures["goals"].items():
        a, b, c = (
            goal["p5a_ratio_to_pgbench"],
            goal["p5b_ratio_to_minimal"],
            goal["p5c_open_loop_p99_ms"],
        )
        goal_rows.append([
            name,
            f"{m.ratio(a)} {m.verdict(a >= MIN_PGBENCH_RATIO)}",
            "-" if b is None else f"{m.ratio(b)} {m.verdict(b >= MIN_MINIMAL_RATIO)}",
            "-" if c is None else f"{_ms(c)} ms {m.verdict(c < MAX_OPEN_LOOP_P99_MS)}",
        ])  # fmt: skip
    m.print_table(
        "api: targets (medians over rounds)",
        ["endpoint and server", f"P5a /pgbench >= {MIN_PGBENCH_RATIO:.1f}x",
         f"P5b /minimal >= {MIN_MINIMAL_RATIO:.1f}x",
         f"P5c p99 at 500/s < {MAX_OPEN_LOOP_P99_MS:.0f} ms"],
        goal_rows,
    )  # fmt: skip
    m.print_table(
        "api: CPU milliseconds per request in the measured window (median over rounds);"
        " client = load generator or pgbench; other = rest of the machine",
        ["endpoint", "server", "server CPU", "Postgres", "client", "other", "busy cores"],
        cpu_rows,
    )
