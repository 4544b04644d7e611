"""Test doubles for the Clever client: a fake clock and a jitter-free random source."""

from __future__ import annotations

import random

START = 1_700_000_000.0


class FakeClock:
    """A unix-seconds clock that only moves when something sleeps on it.

    Pass the instance as `clock=` and its `sleep` as `sleep=`; every wait is recorded
    in `sleeps` and advances `now` instead of taking real time.
    """

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def waits(self, *, at_least: float = 1e-3) -> list[float]:
        """Recorded sleeps of at least `at_least` seconds (ignores microsecond pacing)."""
        return [round(seconds, 6) for seconds in self.sleeps if seconds >= at_least]


class MaxJitter(random.Random):
    """Always draws the top of the jitter range, making backoff delays predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b
