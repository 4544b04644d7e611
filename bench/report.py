"""Printing figures as plain-text tables and saving them as JSON."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def seconds(value: float) -> str:
    return f"{value:,.2f} s"


def count(value: float) -> str:
    return f"{value:,.0f}"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def megabytes(value: float) -> str:
    return f"{value / MB:,.0f} MB"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def verdict(passed: bool) -> str:
    return "ok" if passed else "MISSED"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print `rows` under `headers`; the first column left-aligned, the others right."""
    cells = [[str(header) for header in headers], *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = (
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join([first, *rest]).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


def write_json(results_dir: Path, scenario: str, size: str, figures: Mapping[str, Any]) -> Path:
    """Write `figures` to `<results_dir>/<scenario>-<size>.json`, with when and where."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{scenario}-{size}.json"
    document = {
        "scenario": scenario,
        "size": size,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _code_version(),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        **figures,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return path


def _code_version() -> str:
    """The commit measured, `-dirty` when the working tree had changes."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return described.stdout.strip() or "unknown"


def read_json(results_dir: Path, scenario: str, size: str) -> dict[str, Any] | None:
    """A result written earlier, or None."""
    path = results_dir / f"{scenario}-{size}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
