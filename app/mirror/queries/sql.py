"""Small helpers for assembling parameterised SQL."""

from __future__ import annotations

from typing import Any


class Params:
    """Numbered parameters for one statement: `params.add(value)` returns its placeholder."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def copy(self) -> Params:
        """Parameters to go on from, leaving these as they are."""
        copied = Params()
        copied.values = list(self.values)
        return copied


def like_pattern(text: str) -> str:
    """A case-insensitive substring pattern matching `text` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where(conditions: list[str]) -> str:
    return "WHERE " + " AND ".join(conditions) if conditions else ""
