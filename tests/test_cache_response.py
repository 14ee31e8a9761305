"""The response cache facade: what it stores, for how long, its counters and its failure mode."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import orjson
import pytest

from wayport.cache import (
    DEFAULT_MAX_AGE_S,
    MAX_MAX_AGE_S,
    CacheStatus,
    CacheUnavailable,
    Entry,
    MemoryBackend,
    RedisBackend,
    ResponseCache,
    as_json,
    as_stream,
    cache_key,
    clamp_max_age,
    wants_refresh,
)
from wayport.providers.openai_shapes import ChunkWriter, usage

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Capital of France?"}],
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BrokenBackend:
    async def get(self, key: str) -> bytes | None:
        raise CacheUnavailable("down")

    async def set(self, key: str, value: bytes, ttl_s: int, namespace: str | None) -> None:
        raise CacheUnavailable("down")

    async def delete_namespace(self, namespace: str) -> int:
        raise CacheUnavailable("down")

    async def clear(self) -> None:
        raise CacheUnavailable("down")

    async def close(self) -> None:
        return None


def key_of(params: dict[str, Any], **kwargs: Any) -> str:
    return cache_key(
        provider="openai", endpoint="chatComplete", params=params, metadata={}, namespace=None, **kwargs
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> ResponseCache:
    return ResponseCache(MemoryBackend(clock=clock))


async def test_a_miss_then_a_hit_are_counted(cache: ResponseCache) -> None:
    key = key_of(BODY)
    assert await cache.lookup(key) is None
    assert await cache.store_response(key, ANSWER, status=200, max_age_s=None, namespace=None)
    hit = await cache.lookup(key)
    assert hit is not None and as_json(hit) == ANSWER and hit.stored_at > 0
    assert cache.stats.snapshot() == {
        "hits": 1,
        "misses": 1,
        "semantic_hits": 0,
        "semantic_misses": 0,
        "stores": 1,
        "skipped": 0,
        "errors": 0,
    }


async def test_errors_are_never_stored(cache: ResponseCache) -> None:
    key = key_of(BODY)
    for status, body in [(429, ANSWER), (500, b'{"error":{"message":"x"}}'), (200, b'{"error":"quota"}')]:
        assert not await cache.store_response(key, body, status=status, max_age_s=None, namespace=None)
    entry = Entry(ANSWER, "chat.completion", status=503)
    assert not await cache.store(key, entry, None, None)
    assert not await cache.store(key, Entry(b"{}", "message"), None, None)
    assert await cache.lookup(key) is None
    assert cache.stats.skipped == 5 and cache.stats.stores == 0


async def test_an_entry_larger_than_the_limit_is_not_stored() -> None:
    cache = ResponseCache(MemoryBackend(), max_entry_bytes=100)
    assert not await cache.store_response(key_of(BODY), ANSWER, status=200, max_age_s=None, namespace=None)
    assert cache.stats.skipped == 1


async def test_entries_expire_after_max_age(cache: ResponseCache, clock: Clock) -> None:
    key = key_of(BODY)
    await cache.store_response(key, ANSWER, status=200, max_age_s=120, namespace=None)
    clock.now += 119
    assert await cache.lookup(key) is not None
    clock.now += 2
    assert await cache.lookup(key) is None


async def test_a_max_age_below_a_minute_lasts_a_minute(cache: ResponseCache, clock: Clock) -> None:
    key = key_of(BODY)
    await cache.store_response(key, ANSWER, status=200, max_age_s=5, namespace=None)
    clock.now += 59
    assert await cache.lookup(key) is not None
    clock.now += 2
    assert await cache.lookup(key) is None


async def test_the_default_max_age_is_seven_days(cache: ResponseCache, clock: Clock) -> None:
    key = key_of(BODY)
    await cache.store_response(key, ANSWER, status=200, max_age_s=None, namespace=None)
    clock.now += DEFAULT_MAX_AGE_S - 1
    assert await cache.lookup(key) is not None
    clock.now += 2
    assert await cache.lookup(key) is None


def test_max_age_is_clamped_into_a_minute_to_ninety_days() -> None:
    assert clamp_max_age(None) == 604_800
    assert clamp_max_age(1) == 60
    assert clamp_max_age(3600) == 3600
    assert clamp_max_age(10**9) == MAX_MAX_AGE_S == 7_776_000
    for bad in (0, -5, True, 1.5, "60"):
        with pytest.raises(ValueError, match="max_age"):
            clamp_max_age(bad)  # type: ignore[arg-type]


def test_only_true_forces_a_refresh() -> None:
    assert wants_refresh("true") and wants_refresh(" True ")
    assert not wants_refresh("false") and not wants_refresh(None) and not wants_refresh("")


def test_status_header_values() -> None:
    assert [s.value for s in CacheStatus] == [
        "HIT",
        "SEMANTIC HIT",
        "MISS",
        "SEMANTIC MISS",
        "REFRESH",
        "DISABLED",
    ]


async def test_a_namespace_is_its_own_partition_and_can_be_deleted(cache: ResponseCache) -> None:
    team_a = cache_key(provider="openai", endpoint="chatComplete", params=BODY, metadata={}, namespace="a")
    plain = key_of(BODY)
    await cache.store_response(team_a, ANSWER, status=200, max_age_s=None, namespace="a")
    await cache.store_response(plain, ANSWER, status=200, max_age_s=None, namespace=None)
    assert await cache.delete_namespace("a") == 1
    assert await cache.lookup(team_a) is None and await cache.lookup(plain) is not None


async def test_a_stream_request_hits_an_answer_stored_without_a_stream(cache: ResponseCache) -> None:
    await cache.store_response(key_of(BODY), ANSWER, status=200, max_age_s=None, namespace=None)
    entry = await cache.lookup(key_of({**BODY, "stream": True}))
    assert entry is not None
    events = as_stream(entry, include_usage=True)
    assert b'"content":"Paris"' in b"".join(events) and events[-1] == b"data: [DONE]\n\n"


async def test_a_non_stream_request_hits_an_answer_recorded_from_a_stream(cache: ResponseCache) -> None:
    writer = ChunkWriter({"model": "gpt-4o-mini"}, "openai")
    recorder = cache.recorder(headers=[(b"x-ratelimit-limit-requests", b"5")])
    for event in (writer.chunk({"role": "assistant", "content": "Par"}), writer.chunk({"content": "is"})):
        recorder.feed(event)
    recorder.feed(writer.chunk({}, "stop") + writer.usage_chunk(usage(3, 1)) + b"data: [DONE]\n\n")
    entry = recorder.finish()
    assert entry is not None and entry.headers == ()
    await cache.store(key_of({**BODY, "stream": True}), entry, None, None)
    hit = await cache.lookup(key_of(BODY))
    assert hit is not None
    assert orjson.loads(as_json(hit))["choices"][0]["message"] == {"role": "assistant", "content": "Paris"}


async def test_an_unreachable_backend_is_a_miss_not_a_failure() -> None:
    cache = ResponseCache(BrokenBackend())
    assert await cache.lookup("k") is None
    assert not await cache.store_response("k", ANSWER, status=200, max_age_s=None, namespace=None)
    assert cache.stats.misses == 1 and cache.stats.errors == 2
    with pytest.raises(CacheUnavailable):
        await cache.delete_namespace("a")  # an admin action reports the outage


async def test_unreadable_bytes_are_a_miss() -> None:
    backend = MemoryBackend()
    cache = ResponseCache(backend)
    await backend.set("k", b"garbage", 60, None)
    assert await cache.lookup("k") is None
    assert cache.stats.errors == 1 and cache.stats.misses == 1


async def test_concurrent_identical_requests_all_get_the_one_answer(cache: ResponseCache) -> None:
    key = key_of(BODY)

    async def request() -> bytes:
        entry = await cache.lookup(key)
        if entry is None:
            await asyncio.sleep(0)  # the upstream call
            await cache.store_response(key, ANSWER, status=200, max_age_s=None, namespace=None)
            return ANSWER
        return as_json(entry)

    answers = await asyncio.gather(*(request() for _ in range(50)))
    assert set(answers) == {ANSWER}
    assert cache.stats.hits + cache.stats.misses == 50
    assert len(cache.backend) == 1  # type: ignore[arg-type]
    hit = await cache.lookup(key)
    assert hit is not None and as_json(hit) == ANSWER


REDIS_URL = os.environ.get("WAYPORT_TEST_REDIS_URL")


@pytest.mark.skipif(not REDIS_URL, reason="WAYPORT_TEST_REDIS_URL is not set")
async def test_an_answer_stored_by_one_node_is_a_hit_on_another() -> None:
    assert REDIS_URL is not None
    prefix = f"wayport-test:{uuid.uuid4().hex}:"
    first = ResponseCache(RedisBackend.from_url(REDIS_URL, prefix=prefix))
    second = ResponseCache(RedisBackend.from_url(REDIS_URL, prefix=prefix))
    try:
        key = key_of({**BODY, "stream": True})
        writer = ChunkWriter({"model": "gpt-4o-mini"}, "openai")
        recorder = first.recorder()
        recorder.feed(writer.chunk({"role": "assistant", "content": "Paris"}) + writer.chunk({}, "stop"))
        recorder.feed(b"data: [DONE]\n\n")
        entry = recorder.finish()
        assert entry is not None and await first.store(key, entry, 60, "geo")
        hit = await second.lookup(key_of(BODY))
        assert hit is not None and hit.streamed and hit.pieces == {0: {"content": [5]}}
        assert orjson.loads(as_json(hit))["choices"][0]["message"]["content"] == "Paris"
        assert await second.delete_namespace("geo") == 1
        assert await first.lookup(key) is None
    finally:
        await first.clear()
        await first.close()
        await second.close()
