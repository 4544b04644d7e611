"""Request limits shared by every API replica through Redis.

* A rate limit per API key: at most API_RATE_LIMIT_PER_MINUTE requests in each clock minute
  (a fixed window, so `RateLimit-Reset` is exact: the budget comes back whole at the next
  minute). Every answer to a key carries `RateLimit-Limit`, `RateLimit-Remaining` and
  `RateLimit-Reset`; a refused request is 429 with `Retry-After`.
* A lock-out per client address: after API_AUTH_FAILURES_BEFORE_LOCKOUT presented keys that
  are unknown, revoked or expired within API_AUTH_LOCKOUT_SECONDS, the address gets 429 for
  the rest of that window, whatever key it sends. A process trusts what Redis said of an
  address for LOCKOUT_CHECK_SECONDS (a busy client costs one look a second, not one a
  request): a lock-out counted by another replica takes effect here within that second,
  and one counted here at once.

Both fail open: when Redis cannot be reached the request goes on (and a warning is logged),
since reads need nothing else of Redis and an outage of it must not stop the roster API.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.api.problems import ProblemError

logger = logging.getLogger(__name__)

_PREFIX = "roster:limits"
_WINDOW_SECONDS = 60
LOCKOUT_CHECK_SECONDS = 1.0
# Addresses whose lock-out state a process remembers at most (then it starts afresh).
_CHECKED_ADDRESSES = 10_000

# INCR, and give a new counter its expiry in the same round trip.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


@dataclass(frozen=True)
class Quota:
    """What is left of a key's minute, for the `RateLimit-*` headers."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={_WINDOW_SECONDS}",
        }


class Limits:
    def __init__(
        self,
        redis: Redis,
        *,
        per_minute: int,
        failures_before_lockout: int,
        lockout_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._per_minute = per_minute
        self._failures = failures_before_lockout
        self._lockout_seconds = lockout_seconds
        self._clock = clock
        self._count = redis.register_script(_COUNT)
        # Address -> (trusted until, locked out until or None), in `clock` time.
        self._checked: dict[str, tuple[float, float | None]] = {}

    async def admit(self, key_id: str) -> Quota | None:
        """Count one request of the key; 429 once its minute is spent. None: no limit (off,
        or Redis unreachable)."""
        if self._per_minute <= 0:
            return None
        now = self._clock()
        window = int(now // _WINDOW_SECONDS)
        reset = max(1, math.ceil((window + 1) * _WINDOW_SECONDS - now))
        try:
            count, _ = await self._count(
                keys=[f"{_PREFIX}:rate:{key_id}:{window}"], args=[_WINDOW_SECONDS + 1]
            )
        except (RedisError, OSError) as error:
            logger.warning("rate limit not checked", extra={"error": type(error).__name__})
            return None
        quota = Quota(self._per_minute, max(0, self._per_minute - int(count)), reset)
        if count > self._per_minute:
            raise ProblemError(
                429,
                f"This API key made more than {self._per_minute} requests this minute;"
                f" retry after {reset} s.",
                title="Too many requests",
                headers={"Retry-After": str(reset), **quota.headers()},
            )
        return quota

    async def check_lockout(self, client: str) -> None:
        """429 while the address is locked out after too many bad keys."""
        if self._failures <= 0:
            return
        now = self._clock()
        checked = self._checked.get(client)
        if checked is None or checked[0] <= now:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.get(self._failures_key(client))
                    pipe.ttl(self._failures_key(client))
                    failures, ttl = await pipe.execute()
            except (RedisError, OSError) as error:
                logger.warning("lock-out not checked", extra={"error": type(error).__name__})
                return
            locked = failures is not None and int(failures) >= self._failures
            checked = (now + LOCKOUT_CHECK_SECONDS, now + max(1, int(ttl)) if locked else None)
            if len(self._checked) >= _CHECKED_ADDRESSES:
                self._checked.clear()
            self._checked[client] = checked
        if checked[1] is not None and checked[1] > now:
            raise _locked_out(max(1, math.ceil(checked[1] - now)))

    async def failed(self, client: str) -> None:
        """Count a bad key presented from `client`."""
        if self._failures <= 0:
            return
        # Its next request is checked against Redis again, which counts this failure.
        self._checked.pop(client, None)
        try:
            await self._count(keys=[self._failures_key(client)], args=[self._lockout_seconds])
        except (RedisError, OSError) as error:
            logger.warning("failed key not counted", extra={"error": type(error).__name__})

    @staticmethod
    def _failures_key(client: str) -> str:
        return f"{_PREFIX}:auth-failures:{client}"


def _locked_out(retry_after: int) -> ProblemError:
    return ProblemError(
        429,
        "Too many unknown, revoked or expired API keys came from this address;"
        f" retry after {retry_after} s.",
        title="Locked out",
        headers={"Retry-After": str(retry_after)},
    )
