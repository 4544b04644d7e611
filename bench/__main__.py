"""`python -m bench [scenario ...] [--size M]`: run benchmark scenarios and print their figures.

Postgres: `--server-url`, else `DATABASE_URL`, else 127.0.0.1:5432 as `postgres`; scratch
databases `roster_bench_*` are created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import (
    cli,
    client,
    events,
    history,
    load,
    naive,
    notfound,
    profiling,
    scaleout,
    sync,
)
from bench.api import scenario as api_scenario
from bench.options import RESULTS_DIR, BenchOptions
from sandbox.config import size_spec

Scenario = Callable[[BenchOptions], Awaitable[dict[str, Any]]]

SCENARIOS: dict[str, Scenario] = {
    "client": client.run,
    "sync": sync.run,
    "profile": profiling.run,
    "api": api_scenario.run,
    "notfound": notfound.run,
    "events": events.run,
    "history": history.run,
    "load": load.run,
    "cli": cli.run,
    "naive": naive.run,
    "scaleout": scaleout.run,
}
# Scenarios that always measure one size, whatever `--size` says.
FIXED_SIZES = {"naive": naive.SIZE, "scaleout": scaleout.SIZE}
DEFAULT_SCENARIOS = ("client", "sync", "naive", "api", "cli")
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def parse_arguments(argv: list[str]) -> tuple[list[str], BenchOptions]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n", 1)[0].split(": ", 1)[1]
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"one or more of {', '.join(SCENARIOS)} (default: {' '.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument("--size", default="M", help="district size: tiny, S, 50k, M, L, XL")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_SERVER_URL),
        help="Postgres to create scratch databases on (default: DATABASE_URL or local)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="handed to roster processes, which need one to start (syncs do not use it)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds any one step may take"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the profile's tables")
    parser.add_argument(
        "--no-cprofile", action="store_true", help="profile: skip the cProfile re-sync"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="api: seconds of each measured window; load: of the load without a sync",
    )
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="api: seconds of load before each window"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="api: repeat every measurement this many times"
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="api: keep the synced database (roster_bench_api_<size>) and reuse it next time",
    )
    parser.add_argument(
        "--compare-source",
        type=Path,
        default=None,
        metavar="DIR",
        help="sync: also time a cold sync by the code of the checkout at DIR (git worktree)",
    )
    parser.add_argument(
        "--pin",
        default="0",
        metavar="CPUS",
        help="sync: also run the syncs pinned to these cores, as `taskset -c CPUS` (default 0)",
    )
    parser.add_argument("--no-pin", action="store_true", help="sync: skip the pinned syncs")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    try:
        size = size_spec(args.size).name
    except ValueError as exc:
        parser.error(str(exc))
    try:
        pin_cpus = None if args.no_pin else frozenset(int(cpu) for cpu in args.pin.split(","))
    except ValueError:
        parser.error(f"--pin takes core numbers separated by commas, not {args.pin!r}")
    options = BenchOptions(
        size=size,
        server_url=args.server_url,
        redis_url=args.redis_url,
        results_dir=args.results_dir,
        timeout=args.timeout,
        top=args.top,
        cprofile=not args.no_cprofile,
        seconds=args.seconds,
        warmup=args.warmup,
        rounds=args.rounds,
        keep_database=args.keep_database,
        compare_source=args.compare_source,
        pin_cpus=pin_cpus,
    )
    return list(args.scenarios) or list(DEFAULT_SCENARIOS), options


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (make, timeout) unwinds like Ctrl-C, so child processes and databases go.
    raise KeyboardInterrupt


async def run(scenarios: list[str], options: BenchOptions) -> None:
    for name in scenarios:
        size = FIXED_SIZES.get(name, options.size)
        print(f"\n=== {name} (size {size}) ===", flush=True)
        await SCENARIOS[name](options)


def main(argv: list[str] | None = None) -> int:
    scenarios, options = parse_arguments(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(run(scenarios, options))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
