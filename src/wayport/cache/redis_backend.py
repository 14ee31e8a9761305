"""The shared cache backend: Redis, so every Wayport node sees the answers the others cached.

Layout under the prefix (``wayport:cache:`` by default):

- ``<prefix>e:<key>``: the entry's bytes, with the entry's TTL (``SET ... EX``);
- ``<prefix>ns:<namespace>``: a sorted set of the keys stored under that namespace, scored by
  expiry time. Each write trims members that have expired, so the set stays as small as the
  namespace's live entries, and the set itself expires with its longest-lived entry.

Deleting a namespace reads and drops that one set; nothing in the request path scans the
keyspace. ``clear`` (an admin action) walks only the keys under the prefix with ``SCAN``.
Memory is bounded by Redis itself: run it with ``maxmemory`` and ``maxmemory-policy
allkeys-lru`` (or ``volatile-lru``) when it holds nothing but caches.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from wayport.cache.backend import CacheUnavailable

DEFAULT_PREFIX = "wayport:cache:"
DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MAX_CONNECTIONS = 64
_BATCH = 500


class RedisBackend:
    """Cache entries in Redis (``redis.asyncio``), under ``prefix``.

    Pass a client to share its connection pool, or build one with ``from_url``; only a client
    built here is closed by ``close``. Any Redis or socket error is raised as ``CacheUnavailable``.
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, owns_client: bool = False
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the cache needs a Redis client without decode_responses: entries are bytes")
        self.client = client
        self.prefix = prefix
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> RedisBackend:
        """A backend with its own pool of at most ``max_connections``. ``timeout_s`` bounds each
        command and the wait for a free connection, so a hung or saturated Redis costs a request
        at most about that long (and is then treated as a miss)."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        return cls(redis.Redis.from_pool(pool), prefix=prefix, owns_client=True)

    def _entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _namespace(self, namespace: str) -> str:
        return f"{self.prefix}ns:{namespace}"

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(self._entry(key))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis GET failed: {exc}") from exc
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, ttl_s: int, namespace: str | None) -> None:
        if ttl_s <= 0:
            return
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self._entry(key), value, ex=ttl_s)
                if namespace is not None:
                    ns = self._namespace(namespace)
                    now = time.time()
                    pipe.zadd(ns, {key: now + ttl_s})
                    pipe.zremrangebyscore(ns, "-inf", now)
                    # NX gives a new set its first TTL; GT extends it for a longer-lived entry.
                    pipe.expire(ns, ttl_s, nx=True)
                    pipe.expire(ns, ttl_s, gt=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis SET failed: {exc}") from exc

    async def delete_namespace(self, namespace: str) -> int:
        ns = self._namespace(namespace)
        try:
            # Read and drop the set in one transaction: an entry written meanwhile lands in a new set.
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zrange(ns, 0, -1)
                pipe.delete(ns)
                members, _ = await pipe.execute()
            removed = 0
            keys = [self._entry(m.decode()) for m in members]
            for start in range(0, len(keys), _BATCH):
                removed += int(await self.client.unlink(*keys[start : start + _BATCH]))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis namespace delete failed: {exc}") from exc
        return removed

    async def clear(self) -> int:
        pattern = _glob_escape(self.prefix) + "*"
        removed = 0
        try:
            batch: list[Any] = []
            async for name in self.client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= _BATCH:
                    removed += await self.client.unlink(*batch)
                    batch = []
            if batch:
                removed += await self.client.unlink(*batch)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis clear failed: {exc}") from exc
        return removed

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
