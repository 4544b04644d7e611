"""Cheap, well-mixed integer hashing: every generated value is a pure function of (seed, index)."""

from __future__ import annotations

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix64(value: int) -> int:
    """Return the splitmix64 finalizer of `value`: a bijective, avalanche-quality 64-bit hash."""
    value = (value + _GOLDEN) & MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def stream_key(seed: int, *labels: str | int) -> int:
    """Derive an independent 64-bit key for one kind of random choice from the seed."""
    key = mix64(seed & MASK64)
    for label in labels:
        part = label if isinstance(label, int) else int.from_bytes(label.encode(), "little")
        key = mix64(key ^ (part & MASK64))
    return key


def threshold16(rate: float) -> int:
    """Turn a probability into a bound for a 16-bit hash chunk (`chunk < bound` has that odds)."""
    if rate <= 0:
        return 0
    return max(1, min(1 << 16, round(rate * (1 << 16))))


def fraction_threshold32(rate: float) -> int:
    """Like `threshold16` for a 32-bit value."""
    if rate <= 0:
        return 0
    return max(1, min(1 << 32, round(rate * (1 << 32))))


def fib32(index: int, salt: int) -> int:
    """A very cheap 32-bit scramble of `index` (Fibonacci hashing).

    Weaker than `mix64` but equidistributed, which is all the hot paths that use it need
    (choosing a share of records), and several times faster.
    """
    return ((index + salt) * 0x9E3779B1) & 0xFFFFFFFF
