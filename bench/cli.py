"""Scenario `cli`: how long `roster --help` takes, as a process started from a shell.

Every `roster` command pays its start-up before doing anything, and `--help` is all
start-up. Timed beside two baselines measured in the same run: the interpreter alone
(`python -c pass`) and typer imported alone, the floor of any typer command line.
The target is under 0.3 s.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.options import BenchOptions

TARGET_SECONDS = 0.3
REPEATS = 11


def _wall(argv: list[str]) -> float:
    """The median wall time of `argv`, started REPEATS times (after one unmeasured start)."""
    times = []
    for attempt in range(REPEATS + 1):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _roster() -> list[str]:
    """The installed `roster` script next to this interpreter, as a shell would start it."""
    script = shutil.which("roster", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "app.cli"]


async def run(options: BenchOptions) -> dict[str, Any]:
    roster = _roster()
    figures = {
        "python_seconds": _wall([sys.executable, "-c", "pass"]),
        "typer_seconds": _wall([sys.executable, "-c", "import typer"]),
        "help_seconds": _wall([*roster, "--help"]),
        "sync_help_seconds": _wall([*roster, "sync", "--help"]),
    }
    help_seconds = figures["help_seconds"]
    report.print_table(
        f"`roster --help`, median of {REPEATS} starts",
        ["command", "wall", "x python", "target"],
        [
            ["python -c pass", report.seconds(figures["python_seconds"]), "1.00x", ""],
            [
                "python -c 'import typer'",
                report.seconds(figures["typer_seconds"]),
                report.ratio(figures["typer_seconds"] / figures["python_seconds"]),
                "",
            ],
            [
                "roster --help",
                report.seconds(help_seconds),
                report.ratio(help_seconds / figures["python_seconds"]),
                f"< {TARGET_SECONDS} s {report.verdict(help_seconds < TARGET_SECONDS)}",
            ],
            [
                "roster sync --help",
                report.seconds(figures["sync_help_seconds"]),
                report.ratio(figures["sync_help_seconds"] / figures["python_seconds"]),
                "",
            ],
        ],
    )
    report.write_json(options.results_dir, "cli", "any", figures)
    return figures
