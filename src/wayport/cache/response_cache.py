"""The response cache the gateway calls: lookup, store, the ``max_age`` rules and counters."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from wayport.cache.backend import CacheBackend, CacheUnavailable
from wayport.cache.entry import KINDS, CorruptEntry, Entry
from wayport.cache.recorder import DEFAULT_MAX_STREAM_BYTES, StreamRecorder

log = logging.getLogger("wayport.cache")

MIN_MAX_AGE_S = 60
MAX_MAX_AGE_S = 90 * 24 * 3600  # 7 776 000
DEFAULT_MAX_AGE_S = 7 * 24 * 3600  # 604 800
DEFAULT_MAX_ENTRY_BYTES = 8 * 1024 * 1024


class CacheStatus(StrEnum):
    """Values of the ``x-portkey-cache-status`` response header."""

    HIT = "HIT"
    SEMANTIC_HIT = "SEMANTIC HIT"
    MISS = "MISS"
    SEMANTIC_MISS = "SEMANTIC MISS"
    REFRESH = "REFRESH"
    DISABLED = "DISABLED"


def clamp_max_age(value: int | None) -> int:
    """The TTL in seconds for a config's ``cache.max_age``: the default (7 days) when unset,
    otherwise the value clamped into 60 s .. 90 days (Portkey's hosted limits).

    Values outside the range are clamped rather than refused, so a config that works on
    Portkey keeps working here. Raises ``ValueError`` only for values that are not a positive
    whole number of seconds.
    """
    if value is None:
        return DEFAULT_MAX_AGE_S
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"cache max_age must be a whole number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"cache max_age must be a positive number of seconds, got {value}")
    return min(max(value, MIN_MAX_AGE_S), MAX_MAX_AGE_S)


def wants_refresh(header: str | None) -> bool:
    """``x-portkey-cache-force-refresh``: only ``true`` (any case) refreshes; ``false`` does not."""
    return header is not None and header.strip().lower() == "true"


@dataclass(slots=True)
class CacheStats:
    """Counters since start, for ``/metrics`` and the analytics hit rate."""

    hits: int = 0
    misses: int = 0
    semantic_hits: int = 0
    semantic_misses: int = 0
    stores: int = 0
    # answers offered to ``store`` and not kept: errors, unknown shapes, too large
    skipped: int = 0
    # the backend failed (lookups answered as misses, stores dropped) or held unreadable bytes
    errors: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


class ResponseCache:
    """The simple cache: answers by exact key, in one ``CacheBackend``.

    A backend failure never fails a request: a lookup that cannot reach the backend is a miss,
    a store that cannot is dropped; both are counted in ``stats.errors`` and logged.
    """

    def __init__(self, backend: CacheBackend, *, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES) -> None:
        self.backend = backend
        self.max_entry_bytes = max_entry_bytes
        self.stats = CacheStats()

    async def lookup(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or ``None`` (counted as a hit or a miss)."""
        entry = await self.fetch(key)
        if entry is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return entry

    async def fetch(self, key: str) -> Entry | None:
        """Like ``lookup`` without counting (the semantic cache fetches its neighbours with it)."""
        try:
            raw = await self.backend.get(key)
        except CacheUnavailable as exc:
            self._backend_failed("lookup", exc)
            return None
        if raw is None:
            return None
        try:
            return Entry.from_bytes(raw)
        except CorruptEntry as exc:
            self.stats.errors += 1
            log.warning("cache entry %s is unreadable (%s); treated as a miss", key[:12], exc)
            return None

    async def store(self, key: str, entry: Entry, max_age_s: int | None, namespace: str | None) -> bool:
        """Keep ``entry`` under ``key`` for ``max_age_s`` seconds (see ``clamp_max_age``).

        Only successful OpenAI-shaped answers are kept: an entry with a non-2xx status or of an
        unknown kind is refused, as is one larger than ``max_entry_bytes``. Returns whether the
        entry was written.
        """
        ttl = clamp_max_age(max_age_s)
        if not 200 <= entry.status < 300 or entry.kind not in KINDS:
            self.stats.skipped += 1
            return False
        data = entry.stamped().to_bytes()
        if len(data) > self.max_entry_bytes:
            self.stats.skipped += 1
            return False
        try:
            await self.backend.set(key, data, ttl, namespace or None)
        except CacheUnavailable as exc:
            self._backend_failed("store", exc)
            return False
        self.stats.stores += 1
        return True

    async def store_response(
        self,
        key: str,
        body: bytes,
        *,
        status: int,
        headers: Iterable[tuple[bytes, bytes]] = (),
        max_age_s: int | None,
        namespace: str | None,
    ) -> bool:
        """Store a non-stream answer as the gateway has it (status, headers, body)."""
        entry = Entry.from_response(body, status=status, headers=headers)
        if entry is None:
            self.stats.skipped += 1
            return False
        return await self.store(key, entry, max_age_s, namespace)

    def recorder(self, *, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()) -> StreamRecorder:
        """A ``StreamRecorder`` for a streamed answer about to be relayed."""
        return StreamRecorder(
            status=status, headers=headers, max_bytes=max(self.max_entry_bytes, DEFAULT_MAX_STREAM_BYTES)
        )

    async def delete_namespace(self, namespace: str) -> int:
        """``DELETE /v1/cache`` for one namespace; returns how many entries went."""
        return await self.backend.delete_namespace(namespace)

    async def clear(self) -> int:
        """``DELETE /v1/cache`` for everything; returns how many keys went."""
        return await self.backend.clear()

    async def close(self) -> None:
        await self.backend.close()

    def _backend_failed(self, action: str, exc: CacheUnavailable) -> None:
        self.stats.errors += 1
        log.warning("cache %s failed, continuing without the cache: %s", action, exc)
