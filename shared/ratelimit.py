"""Rate limits backed by Redis, shared by every API process.

A limit is a sliding pair of fixed windows (the approximation Cloudflare and nginx-style
limiters use): the count in the current window plus the previous window's count weighted by
how much of it still overlaps. One Lua script does the read and the increment atomically, so
concurrent API processes cannot race past the limit.

When Redis cannot be reached the request is let through (and logged): a rate limit must never
turn a Redis outage into an API outage.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import TooManyRequests

log = logging.getLogger(__name__)

# After Redis fails to answer, requests are let through unchecked for this long.
DOWN_PAUSE_S = 5.0

# KEYS[1] current window, KEYS[2] previous window; ARGV: limit, window_ms, elapsed_ms.
# Returns {allowed (0/1), estimated count}. A refused request is not counted.
_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local estimate = previous * (window - elapsed) / window + current
if estimate + 1 > limit then
  return {0, math.floor(estimate)}
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], window * 2)
return {1, math.floor(estimate + 1)}
"""


@dataclass(frozen=True)
class Limit:
    """At most `requests` per `window_s` seconds."""

    requests: int
    window_s: int

    def __str__(self) -> str:
        return f"{self.requests} requests per {self.window_s} s"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int
    # Seconds until the current window ends.
    reset_s: int = 0


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "portrait:rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_SCRIPT)
        self._down_until = 0.0

    async def hit(self, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        """Count one request against `key` (an id or a hash, never personal data)."""
        now = time.time() if now is None else now
        window_ms = limit.window_s * 1000
        now_ms = int(now * 1000)
        index = now_ms // window_ms
        elapsed = now_ms - index * window_ms
        keys = [f"{self.prefix}:{key}:{index}", f"{self.prefix}:{key}:{index - 1}"]
        if time.monotonic() < self._down_until:
            return Decision(True, limit.requests, 0)
        try:
            allowed, estimate = await self._script(
                keys=keys, args=[limit.requests, window_ms, elapsed]
            )
        except (RedisError, OSError) as exc:
            # Every keyed request passes here: while Redis is away, do not make each of them
            # wait for a connection timeout; try again after a pause.
            self._down_until = time.monotonic() + DOWN_PAUSE_S
            log.warning("rate limit not checked, Redis unavailable: %s", type(exc).__name__)
            return Decision(True, limit.requests, 0)
        reset_s = max(1, math.ceil((window_ms - elapsed) / 1000))
        if allowed:
            return Decision(True, max(limit.requests - int(estimate), 0), 0, reset_s)
        # The earliest moment the weighted estimate drops below the limit again is at most
        # the end of the current window.
        return Decision(False, 0, reset_s, reset_s)

    async def check(self, key: str, limit: Limit, what: str) -> Decision:
        """Like `hit`, but raise 429 problem+json with `Retry-After` when over the limit."""
        decision = await self.hit(key, limit)
        if not decision.allowed:
            raise TooManyRequests(
                f"Too many requests for this {what}: the limit is {limit}. "
                f"Retry after {decision.retry_after_s} s.",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        return decision
