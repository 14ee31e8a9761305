"""The one interface every cache store implements: bytes in, bytes out, with a TTL."""

from __future__ import annotations

from typing import Protocol


class CacheUnavailable(Exception):
    """The backend could not be reached or did not answer in time.

    The response cache treats it as a miss (lookup) or a skipped write (store): a cache outage
    slows requests down but never fails them.
    """


class CacheBackend(Protocol):
    """Where cached answers live: the in-process LRU (``MemoryBackend``) or Redis (``RedisBackend``).

    Keys are the hex digests of ``cache_key``; values are opaque bytes (``Entry.to_bytes``). A
    backend may drop any entry at any time (eviction); it must never return an entry after its
    TTL. Failures to reach the store raise ``CacheUnavailable``.
    """

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: int, namespace: str | None) -> None:
        """Store ``value`` for ``ttl_s`` seconds, remembering it under ``namespace`` (if any) so
        ``delete_namespace`` can remove it."""
        ...

    async def delete_namespace(self, namespace: str) -> int:
        """Remove every entry stored under ``namespace``; return how many were removed."""
        ...

    async def clear(self) -> int:
        """Remove every entry of this cache (and nothing else); returns how many keys went."""
        ...

    async def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
