"""Request pacing, retry backoff and rate-limit header parsing.

Time comes from an injected clock (unix seconds) and waits go through an injected async
sleep, so tests drive every wait with a fake clock instead of sleeping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]
"""Returns the current time in unix seconds (`time.time`)."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds (`asyncio.sleep`)."""

# Clever's window is one minute; a longer wait means a skewed clock or a broken header,
# and waiting it out would stall a sync for no reason.
MAX_RATE_LIMIT_WAIT_SECONDS = 300.0

# An X-RateLimit-Reset below this (2001-09-09) cannot be a unix time, so it is read as
# a number of seconds to wait, the form some gateways send.
_EPOCH_THRESHOLD = 1_000_000_000.0


class RequestPacer:
    """Spaces requests evenly so that at most `requests_per_minute` start in any minute.

    Each caller reserves the next free slot before awaiting, so concurrent requests on
    one client (one token) share the budget without a lock.
    """

    def __init__(self, requests_per_minute: int, *, clock: Clock, sleep: Sleep) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self._interval = 60.0 / requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._next_slot = -math.inf

    @property
    def interval(self) -> float:
        """Seconds between two consecutive request starts."""
        return self._interval

    async def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)
        return max(delay, 0.0)

    def hold_until(self, moment: float) -> None:
        """Start no request before `moment` (unix seconds), e.g. after a 429."""
        self._next_slot = max(self._next_slot, moment)


def backoff_delay(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter for the `retry`-th retry (1-based).

    Full jitter spreads the retries of many workers hit by the same outage over the
    whole window instead of synchronising them.
    """
    ceiling = min(cap, base * 2 ** (retry - 1))
    return rng.uniform(0.0, ceiling)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait after a 429, from `Retry-After` or `X-RateLimit-Reset`.

    `Retry-After` wins when present because it is relative and so immune to clock skew.
    Returns None when neither header is usable; the wait is clamped to
    [0, MAX_RATE_LIMIT_WAIT_SECONDS].
    """
    wait = _retry_after(headers.get("retry-after"), now)
    if wait is None:
        wait = _reset_wait(headers.get("x-ratelimit-reset"), now)
    if wait is None:
        return None
    return min(max(wait, 0.0), MAX_RATE_LIMIT_WAIT_SECONDS)


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    seconds = _finite_float(value)
    if seconds is not None:
        return seconds
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError, IndexError):
        return None


def _reset_wait(value: str | None, now: float) -> float | None:
    if not value:
        return None
    reset = _finite_float(value)
    if reset is None:
        return None
    return reset - now if reset >= _EPOCH_THRESHOLD else reset


def _finite_float(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
