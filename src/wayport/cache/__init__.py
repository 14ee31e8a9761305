"""The response cache: simple (exact key) and semantic (nearest neighbour) modes over one small
backend interface, with an in-process LRU and Redis as backends.

The gateway computes a key with ``cache_key``, asks ``ResponseCache.lookup``, replays a hit with
``as_json`` or ``as_stream``, and stores a fresh 2xx answer with ``ResponseCache.store`` (or
``store_response``), recording a streamed one with a ``StreamRecorder`` as it is relayed.
``SemanticCache`` adds the nearest-neighbour lookup for chat and text completions.
"""

from __future__ import annotations

from wayport.cache.agreement import texts_agree
from wayport.cache.backend import CacheBackend, CacheUnavailable
from wayport.cache.entry import CorruptEntry, Entry
from wayport.cache.hashing_embedder import HashingEmbedder
from wayport.cache.key import cache_key
from wayport.cache.memory import MemoryBackend
from wayport.cache.recorder import StreamRecorder
from wayport.cache.redis_backend import RedisBackend
from wayport.cache.replay import as_json, as_stream
from wayport.cache.response_cache import (
    DEFAULT_MAX_AGE_S,
    MAX_MAX_AGE_S,
    MIN_MAX_AGE_S,
    CacheStats,
    CacheStatus,
    ResponseCache,
    clamp_max_age,
    wants_refresh,
)
from wayport.cache.semantic import (
    Embedder,
    EmbedderUnavailable,
    SemanticCache,
    SemanticMatch,
    SemanticRequest,
    WarmingEmbedder,
)

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "MAX_MAX_AGE_S",
    "MIN_MAX_AGE_S",
    "CacheBackend",
    "CacheStats",
    "CacheStatus",
    "CacheUnavailable",
    "CorruptEntry",
    "Embedder",
    "EmbedderUnavailable",
    "Entry",
    "HashingEmbedder",
    "MemoryBackend",
    "RedisBackend",
    "ResponseCache",
    "SemanticCache",
    "SemanticMatch",
    "SemanticRequest",
    "StreamRecorder",
    "WarmingEmbedder",
    "as_json",
    "as_stream",
    "cache_key",
    "clamp_max_age",
    "texts_agree",
    "wants_refresh",
]
