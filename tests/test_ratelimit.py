"""The Redis-backed rate limiter: a real Redis, shared by every API process."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis

from shared.errors import TooManyRequests
from shared.ratelimit import Limit, RateLimiter
from shared.settings import Settings


@pytest.fixture
async def limiter(settings: Settings) -> RateLimiter:
    assert settings.redis.url
    redis = Redis.from_url(settings.redis.url.replace("valkey://", "redis://", 1))
    return RateLimiter(redis, prefix=f"portrait:test:rl:{secrets.token_hex(4)}")


async def test_allows_up_to_the_limit_then_refuses_with_retry_after(limiter: RateLimiter) -> None:
    limit = Limit(requests=5, window_s=60)
    t = 1_000_000.0 * 60  # the start of a window
    decisions = [await limiter.hit("key-a", limit, now=t + i) for i in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert decisions[4].remaining == 0
    assert 1 <= decisions[5].retry_after_s <= 60
    # Another key has its own budget.
    assert (await limiter.hit("key-b", limit, now=t)).allowed


async def test_the_previous_window_counts_while_it_overlaps(limiter: RateLimiter) -> None:
    limit = Limit(requests=10, window_s=10)
    t = 1_000_000.0 * 10
    for i in range(10):
        assert (await limiter.hit("k", limit, now=t + i * 0.5)).allowed
    # Just after the window turns, the previous window still weighs almost fully.
    assert not (await limiter.hit("k", limit, now=t + 10.5)).allowed
    # Two windows later it no longer counts.
    assert (await limiter.hit("k", limit, now=t + 20.5)).allowed


async def test_check_raises_a_429_problem(limiter: RateLimiter) -> None:
    limit = Limit(requests=1, window_s=30)
    await limiter.check("one", limit, "survey token")
    with pytest.raises(TooManyRequests) as err:
        await limiter.check("one", limit, "survey token")
    assert err.value.status == 429
    assert int(err.value.headers["Retry-After"]) >= 1
    assert "survey token" in err.value.detail


async def test_redis_away_lets_requests_through() -> None:
    down = RateLimiter(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    assert (await down.hit("k", Limit(1, 1))).allowed
    assert (await down.hit("k", Limit(1, 1))).allowed
