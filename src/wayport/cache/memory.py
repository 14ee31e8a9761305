"""The embedded cache backend: an in-process LRU bounded by the bytes it holds."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_BYTES = 128 * 1024 * 1024
# What one entry costs beyond its key and value (dict slot, record object, namespace set slot),
# measured roughly with sys.getsizeof; it keeps many tiny entries from escaping the bound.
ENTRY_OVERHEAD = 240
SWEEP_INTERVAL_S = 30.0


@dataclass(slots=True)
class _Record:
    value: bytes
    expires_at: float
    namespace: str | None
    size: int


class MemoryBackend:
    """An LRU of cached answers in this process, holding at most ``max_bytes`` (keys, values and a
    fixed per-entry overhead). Expiry is checked on read; expired and least recently used entries
    are evicted when room is needed.

    ``clock`` returns seconds (monotonic); tests pass a fake one to move time. All methods run
    without awaiting, so concurrent tasks of one event loop see each operation as atomic.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._namespaces: dict[str, set[str]] = {}
        self._bytes = 0
        self._next_sweep = 0.0
        self.evictions = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._records)

    async def get(self, key: str) -> bytes | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.expires_at <= self._clock():
            self._remove(key)
            return None
        self._records.move_to_end(key)
        return record.value

    async def set(self, key: str, value: bytes, ttl_s: int, namespace: str | None) -> None:
        size = len(key) + len(value) + ENTRY_OVERHEAD
        if key in self._records:
            self._remove(key)
        if size > self.max_bytes or ttl_s <= 0:
            return
        self._make_room(size)
        self._records[key] = _Record(value, self._clock() + ttl_s, namespace, size)
        self._bytes += size
        if namespace is not None:
            self._namespaces.setdefault(namespace, set()).add(key)

    async def delete_namespace(self, namespace: str) -> int:
        keys = self._namespaces.get(namespace)
        if not keys:
            return 0
        now = self._clock()
        removed = 0
        for key in list(keys):
            record = self._records.get(key)
            if record is not None and record.expires_at > now:
                removed += 1
            self._remove(key)
        return removed

    async def clear(self) -> int:
        count = len(self._records)
        self._records.clear()
        self._namespaces.clear()
        self._bytes = 0
        return count

    async def close(self) -> None:
        await self.clear()

    def _make_room(self, size: int) -> None:
        records = self._records
        if self._bytes + size <= self.max_bytes:
            return
        now = self._clock()
        # Expired entries go first, wherever they sit in the LRU order; the sweep walks every
        # entry, so it runs at most once per interval, not on every write to a full cache.
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            for key in [k for k, r in records.items() if r.expires_at <= now]:
                self._remove(key)
        while records and self._bytes + size > self.max_bytes:
            oldest = next(iter(records))
            self._remove(oldest)
            self.evictions += 1

    def _remove(self, key: str) -> None:
        record = self._records.pop(key, None)
        if record is None:
            return
        self._bytes -= record.size
        if record.namespace is not None:
            keys = self._namespaces.get(record.namespace)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._namespaces[record.namespace]
