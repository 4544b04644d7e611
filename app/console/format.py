"""Formatting helpers of the console's templates: plain functions, unit-tested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape


def ago(moment: datetime | None, now: datetime) -> str:
    """`3 min ago`, `5 h ago`, `2 d ago`; `never` for no time."""
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def duration(started: datetime | None, finished: datetime | None) -> str:
    """`850 ms`, `12.4 s`, `3 min 5 s`; an empty string while not both known."""
    if started is None or finished is None:
        return ""
    seconds = (finished - started).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def freshness(fresh_at: datetime | None, now: datetime, stale_after_hours: int) -> str:
    """`fresh`, `stale` (no successful sync within `stale_after_hours`) or `never`."""
    if fresh_at is None:
        return "never"
    return "fresh" if now - fresh_at <= timedelta(hours=stale_after_hours) else "stale"


@dataclass(frozen=True)
class Series:
    """One row of a run chart: a name, a value per run (oldest first), its unit."""

    name: str
    values: Sequence[float]
    unit: str = ""


def bar_chart(series: Series, labels: Sequence[str], *, width: int = 600, height: int = 90) -> str:
    """An SVG bar chart of one series, each bar titled with its label and value; scaled to
    the largest value. The SVG has a title and description for screen readers."""
    count = len(series.values)
    top = max(series.values, default=0) or 1
    slot = width / max(count, 1)
    bars = []
    for index, (value, label) in enumerate(zip(series.values, labels, strict=True)):
        bar_height = max(1.0, value / top * (height - 14)) if value else 0.0
        x = index * slot + slot * 0.15
        text = f"{label}: {_number(value)}{series.unit}"
        bars.append(
            f'<rect x="{x:.1f}" y="{height - bar_height:.1f}" width="{slot * 0.7:.1f}"'
            f' height="{bar_height:.1f}"><title>{escape(text)}</title></rect>'
        )
    summary = escape(f"{series.name}, {count} runs, largest {_number(top)}{series.unit}")
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}"'
        f' preserveAspectRatio="none" aria-label="{summary}">'
        f"<title>{summary}</title>{''.join(bars)}</svg>"
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
