"""The same behaviour from every cache backend: the in-process LRU and Redis.

Redis tests need WAYPORT_TEST_REDIS_URL; each run uses its own key prefix and clears it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as redis

from wayport.cache import CacheBackend, CacheUnavailable, MemoryBackend, RedisBackend
from wayport.cache.memory import ENTRY_OVERHEAD

REDIS_URL = os.environ.get("WAYPORT_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="WAYPORT_TEST_REDIS_URL is not set")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A backend plus a way to let ``seconds`` pass for it."""

    def __init__(self, backend: CacheBackend, wait: Callable[[float], Coroutine[Any, Any, None]]) -> None:
        self.backend = backend
        self.wait = wait


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Harness(MemoryBackend(1024 * 1024, clock=clock), advance)
        return
    assert REDIS_URL is not None
    backend = RedisBackend.from_url(REDIS_URL, prefix=f"wayport-test:{uuid.uuid4().hex}:")

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    try:
        yield Harness(backend, sleep)
    finally:
        await backend.clear()
        await backend.close()


async def test_a_missing_key_is_a_miss(harness: Harness) -> None:
    assert await harness.backend.get("nope") is None


async def test_a_stored_value_is_a_hit(harness: Harness) -> None:
    await harness.backend.set("k1", b"\x00answer\xff", 60, None)
    assert await harness.backend.get("k1") == b"\x00answer\xff"


async def test_a_second_set_replaces_the_value(harness: Harness) -> None:
    await harness.backend.set("k1", b"old", 60, None)
    await harness.backend.set("k1", b"new", 60, None)
    assert await harness.backend.get("k1") == b"new"


async def test_an_entry_expires_after_its_ttl(harness: Harness) -> None:
    await harness.backend.set("short", b"v", 1, None)
    await harness.backend.set("long", b"v", 60, None)
    assert await harness.backend.get("short") == b"v"
    await harness.wait(1.2)
    assert await harness.backend.get("short") is None
    assert await harness.backend.get("long") == b"v"


async def test_deleting_a_namespace_removes_only_its_entries(harness: Harness) -> None:
    backend = harness.backend
    await backend.set("a1", b"1", 60, "team-a")
    await backend.set("a2", b"2", 60, "team-a")
    await backend.set("b1", b"3", 60, "team-b")
    await backend.set("plain", b"4", 60, None)
    assert await backend.delete_namespace("team-a") == 2
    assert await backend.get("a1") is None and await backend.get("a2") is None
    assert await backend.get("b1") == b"3"
    assert await backend.get("plain") == b"4"
    assert await backend.delete_namespace("team-a") == 0
    assert await backend.delete_namespace("never-used") == 0


async def test_a_namespace_can_be_written_again_after_deletion(harness: Harness) -> None:
    await harness.backend.set("a1", b"1", 60, "team-a")
    await harness.backend.delete_namespace("team-a")
    await harness.backend.set("a1", b"again", 60, "team-a")
    assert await harness.backend.get("a1") == b"again"
    assert await harness.backend.delete_namespace("team-a") == 1


async def test_clear_removes_everything(harness: Harness) -> None:
    for i in range(30):
        await harness.backend.set(f"k{i}", b"v", 60, "ns" if i % 2 else None)
    await harness.backend.clear()
    assert [await harness.backend.get(f"k{i}") for i in range(30)] == [None] * 30
    assert await harness.backend.delete_namespace("ns") == 0


async def test_concurrent_sets_all_land(harness: Harness) -> None:
    await asyncio.gather(*(harness.backend.set(f"c{i}", str(i).encode(), 60, "ns") for i in range(200)))
    values = await asyncio.gather(*(harness.backend.get(f"c{i}") for i in range(200)))
    assert values == [str(i).encode() for i in range(200)]
    assert await harness.backend.delete_namespace("ns") == 200


async def test_concurrent_sets_of_one_key_leave_one_whole_value(harness: Harness) -> None:
    values = [bytes([i]) * 1000 for i in range(50)]
    await asyncio.gather(*(harness.backend.set("same", v, 60, None) for v in values))
    assert await harness.backend.get("same") in values


# -- the in-process LRU ------------------------------------------------------------------------


def entry_size(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD


async def test_memory_evicts_the_least_recently_used_entries_by_bytes() -> None:
    value = b"x" * 1000
    backend = MemoryBackend(3 * entry_size("k0", value))
    for i in range(3):
        await backend.set(f"k{i}", value, 60, None)
    assert await backend.get("k0") == value  # k0 is now the most recently used
    await backend.set("k3", value, 60, None)
    assert await backend.get("k1") is None
    assert [await backend.get(k) for k in ("k0", "k2", "k3")] == [value] * 3
    assert backend.size_bytes <= backend.max_bytes and backend.evictions == 1


async def test_memory_evicts_expired_entries_before_live_ones() -> None:
    clock = FakeClock()
    value = b"x" * 1000
    backend = MemoryBackend(3 * entry_size("k0", value), clock=clock)
    await backend.set("k0", value, 60, None)
    await backend.set("k1", value, 10, None)
    await backend.set("k2", value, 60, None)
    await backend.get("k0")
    clock.now += 30  # k1 has expired
    await backend.set("k3", value, 60, None)
    assert await backend.get("k0") == value and await backend.get("k3") == value
    assert backend.evictions == 0


async def test_memory_never_holds_an_entry_larger_than_its_bound() -> None:
    backend = MemoryBackend(2000)
    await backend.set("small", b"s", 60, None)
    await backend.set("huge", b"x" * 5000, 60, "ns")
    assert await backend.get("huge") is None
    assert await backend.get("small") == b"s"
    assert await backend.delete_namespace("ns") == 0


async def test_memory_counts_bytes_of_replaced_and_deleted_entries() -> None:
    backend = MemoryBackend(1024 * 1024)
    await backend.set("k", b"x" * 100, 60, "ns")
    await backend.set("k", b"x" * 10, 60, "ns")
    assert backend.size_bytes == entry_size("k", b"x" * 10)
    await backend.delete_namespace("ns")
    assert backend.size_bytes == 0 and len(backend) == 0


def test_memory_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBackend(0)


# -- Redis specifics ---------------------------------------------------------------------------


@needs_redis
async def test_redis_keeps_its_keys_under_the_prefix_and_trims_namespace_sets() -> None:
    assert REDIS_URL is not None
    prefix = f"wayport-test:{uuid.uuid4().hex}:"
    backend = RedisBackend.from_url(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await backend.set("k1", b"v", 1, "ns")
        await asyncio.sleep(1.2)
        await backend.set("k2", b"v", 60, "ns")
        members = await client.zrange(f"{prefix}ns:ns", 0, -1)
        assert members == [b"k2"]  # the expired k1 was trimmed by the second write
        assert 50 < await client.ttl(f"{prefix}ns:ns") <= 60
        names = {n async for n in client.scan_iter(match=f"{prefix}*")}
        assert names == {f"{prefix}e:k2".encode(), f"{prefix}ns:ns".encode()}
    finally:
        await backend.clear()
        await backend.close()
        await client.aclose()


@needs_redis
async def test_redis_clear_leaves_other_prefixes_alone() -> None:
    assert REDIS_URL is not None
    run = uuid.uuid4().hex
    mine = RedisBackend.from_url(REDIS_URL, prefix=f"wayport-test:{run}:a:")
    other = RedisBackend.from_url(REDIS_URL, prefix=f"wayport-test:{run}:b:")
    try:
        await mine.set("k", b"mine", 60, None)
        await other.set("k", b"other", 60, None)
        await mine.clear()
        assert await mine.get("k") is None
        assert await other.get("k") == b"other"
    finally:
        for backend in (mine, other):
            await backend.clear()
            await backend.close()


async def test_an_unreachable_redis_raises_cache_unavailable() -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        with pytest.raises(CacheUnavailable):
            await backend.get("k")
        with pytest.raises(CacheUnavailable):
            await backend.set("k", b"v", 60, "ns")
    finally:
        await backend.close()


def test_redis_refuses_a_client_that_decodes_responses() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend(client)
