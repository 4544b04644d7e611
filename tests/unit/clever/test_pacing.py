"""Pacing, backoff and rate-limit headers, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from email.utils import formatdate

import pytest

from app.clever.pacing import (
    MAX_RATE_LIMIT_WAIT_SECONDS,
    RequestPacer,
    backoff_delay,
    rate_limit_wait,
)
from tests.unit.clever.fakes import START, FakeClock

NOW = START


async def test_requests_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    pacer = RequestPacer(1200, clock=clock, sleep=clock.sleep)

    waited = [await pacer.acquire() for _ in range(5)]

    assert waited == pytest.approx([0.0, 0.05, 0.05, 0.05, 0.05])
    assert clock.now - START == pytest.approx(0.2)


async def test_no_wait_when_requests_are_already_slower_than_the_rate() -> None:
    clock = FakeClock()
    pacer = RequestPacer(60, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        await pacer.acquire()
        clock.now += 2.0

    assert clock.sleeps == []


async def test_concurrent_callers_get_successive_slots() -> None:
    reserved: list[float] = []

    async def record(seconds: float) -> None:
        reserved.append(seconds)

    pacer = RequestPacer(600, clock=lambda: START, sleep=record)

    await asyncio.gather(*(pacer.acquire() for _ in range(4)))

    assert sorted(reserved) == pytest.approx([0.1, 0.2, 0.3])


async def test_hold_until_delays_the_next_request() -> None:
    clock = FakeClock()
    pacer = RequestPacer(1200, clock=clock, sleep=clock.sleep)
    await pacer.acquire()

    pacer.hold_until(START + 9.5)
    await pacer.acquire()
    pacer.hold_until(START)
    await pacer.acquire()

    assert clock.sleeps == pytest.approx([9.5, 0.05])


def test_pacer_needs_a_positive_rate() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        RequestPacer(0, clock=clock, sleep=clock.sleep)
    assert RequestPacer(1200, clock=clock, sleep=clock.sleep).interval == pytest.approx(0.05)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(3)
    for retry in range(1, 12):
        ceiling = min(10.0, 0.5 * 2 ** (retry - 1))
        delays = [backoff_delay(retry, base=0.5, cap=10.0, rng=rng) for _ in range(50)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": formatdate(NOW + 20, usegmt=True)}, 20.0),
        ({"x-ratelimit-reset": str(int(NOW) + 42)}, 42.0),
        ({"x-ratelimit-reset": "15"}, 15.0),
        ({"x-ratelimit-reset": str(int(NOW) - 10)}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "1", "x-ratelimit-reset": str(int(NOW) + 42)}, 1.0),
        ({"retry-after": "soon", "x-ratelimit-reset": str(int(NOW) + 4)}, 4.0),
        ({"retry-after": "99999"}, MAX_RATE_LIMIT_WAIT_SECONDS),
        ({"retry-after": "nan"}, None),
        ({"x-ratelimit-reset": "tomorrow"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_rate_limit_wait(headers: dict[str, str], expected: float | None) -> None:
    wait = rate_limit_wait(headers, NOW)

    assert wait == (pytest.approx(expected) if expected is not None else None)
