"""Rate limits: the same suite on the in-process limiter and on Redis (WAYPORT_TEST_REDIS_URL).

Each Redis test uses a key prefix of its own and deletes only those keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from wayport.security.limits import RateKind, RateLimit
from wayport.security.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

REDIS_URL = os.environ.get("WAYPORT_TEST_REDIS_URL")
REDIS_SKIP_REASON = (
    "WAYPORT_TEST_REDIS_URL is not set; the Redis half of the rate-limit suite needs it "
    "(e.g. redis://127.0.0.1:6379/0)"
)
T0 = 1_800_000_000.0  # a minute boundary
TEN_PER_MINUTE = RateLimit(RateKind.REQUESTS, 60, 10)


def connect() -> redis.Redis:
    """A client whose pool makes callers wait for a connection, as the app's does."""
    assert REDIS_URL is not None
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=32))


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    if not REDIS_URL:
        pytest.skip(REDIS_SKIP_REASON)
    connection = connect()
    yield connection
    await connection.aclose()


@pytest.fixture
async def prefix(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    prefix = f"wayport-test:rl:{uuid.uuid4().hex}:"
    yield prefix
    if REDIS_URL:
        connection = connect()
        keys = [key async for key in connection.scan_iter(match=prefix + "*")]
        if keys:
            await connection.delete(*keys)
        await connection.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    if not REDIS_URL:
        pytest.skip(REDIS_SKIP_REASON)
    connection = connect()
    yield RedisRateLimiter(connection, prefix=prefix)
    await connection.aclose()


async def test_n_requests_per_window_then_a_retry_after(limiter: RateLimiter) -> None:
    for i in range(10):
        assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + i) is None
    wait = await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 10)
    # the first request (second 0) leaves the window at second 61: one slot later than exact
    assert wait == pytest.approx(51, abs=0.01)


async def test_the_block_clears_as_the_window_moves_forward(limiter: RateLimiter) -> None:
    for i in range(10):
        assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + i * 3) is None
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 59) is not None
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 61) is None  # second 0 left
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 61.5) is not None
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 64) is None  # second 3 left
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0 + 200) is None


async def test_no_window_ever_holds_more_than_the_limit(limiter: RateLimiter) -> None:
    # a burst at the end of one minute and another at the start of the next: a fixed window
    # would admit 20 within two seconds
    admitted = [
        t
        for t in (T0 + 59.5,) * 10 + (T0 + 60.5,) * 10
        if await limiter.hit("ak:1", TEN_PER_MINUTE, 1, t) is None
    ]
    assert len(admitted) == 10


async def test_keys_and_limits_are_counted_apart(limiter: RateLimiter) -> None:
    per_hour = RateLimit(RateKind.REQUESTS, 3600, 1)
    assert await limiter.hit("ak:1", per_hour, 1, T0) is None
    assert await limiter.hit("ak:1", per_hour, 1, T0) is not None
    assert await limiter.hit("ak:2", per_hour, 1, T0) is None
    assert await limiter.hit("ak:1", TEN_PER_MINUTE, 1, T0) is None


async def test_tokens_are_added_after_the_response_and_block_the_next_request(limiter: RateLimiter) -> None:
    tokens = RateLimit(RateKind.TOKENS, 60, 1000)
    assert await limiter.hit("vk:a", tokens, 0, T0) is None
    await limiter.add("vk:a", tokens, 999, T0)
    assert await limiter.hit("vk:a", tokens, 0, T0 + 1) is None
    await limiter.add("vk:a", tokens, 5, T0 + 1)  # a response may overshoot: it is counted
    wait = await limiter.hit("vk:a", tokens, 0, T0 + 2)
    assert wait == pytest.approx(59, abs=0.01)


async def test_a_limit_of_zero_blocks_everything(limiter: RateLimiter) -> None:
    blocked = RateLimit(RateKind.REQUESTS, 60, 0)
    assert await limiter.hit("vk:off", blocked, 1, T0) == 60


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    limit = RateLimit(RateKind.REQUESTS, 60, 50)
    results = await asyncio.gather(*(limiter.hit("ak:hot", limit, 1, T0 + 1) for _ in range(200)))
    assert sum(r is None for r in results) == 50


async def test_without_now_the_limiter_uses_the_clock(limiter: RateLimiter) -> None:
    limit = RateLimit(RateKind.REQUESTS, 86_400, 2)
    assert await limiter.hit("ak:clock", limit) is None
    assert await limiter.hit("ak:clock", limit) is None
    wait = await limiter.hit("ak:clock", limit)
    assert wait is not None and 86_000 < wait <= 86_400 + 1440


async def test_two_limiters_on_one_redis_share_the_count(client: redis.Redis, prefix: str) -> None:
    assert REDIS_URL is not None
    other = connect()
    try:
        nodes = [RedisRateLimiter(client, prefix=prefix), RedisRateLimiter(other, prefix=prefix)]
        limit = RateLimit(RateKind.REQUESTS, 60, 50)
        results = await asyncio.gather(*(nodes[i % 2].hit("ak:shared", limit, 1) for i in range(200)))
        assert sum(r is None for r in results) == 50
        assert all(r is None or r > 0 for r in results)
    finally:
        await other.aclose()


async def test_redis_keys_expire_after_the_window(client: redis.Redis, prefix: str) -> None:
    await RedisRateLimiter(client, prefix=prefix).hit("ak:ttl", TEN_PER_MINUTE)
    (key,) = [key async for key in client.scan_iter(match=prefix + "*")]
    assert 60 < await client.ttl(key) <= 62


async def test_a_redis_that_does_not_answer_raises() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises((redis.ConnectionError, OSError)):
        await RedisRateLimiter(dead).hit("ak:1", TEN_PER_MINUTE)
    await dead.aclose()
