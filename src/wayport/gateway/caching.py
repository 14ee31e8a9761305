"""The response cache as the data plane uses it: look up before a target is called, replay a hit
(as JSON or as a stream, whichever the client asked for), and store a fresh 2xx answer off the
request path (a stream once it has completed normally).

In semantic mode (``cache.mode == "semantic"`` and a ``SemanticCache`` configured), a request the
semantic cache takes (see ``wayport.cache.semantic``) is looked up exactly first (``HIT``), then by
meaning (``SEMANTIC HIT``, else ``SEMANTIC MISS``), and its fresh answer is stored under its exact
key and indexed by its question. Every other request, and every request when no semantic cache
exists, is cached exactly (``HIT``/``MISS``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from wayport.cache import (
    CacheStatus,
    Entry,
    ResponseCache,
    SemanticCache,
    SemanticRequest,
    StreamRecorder,
    as_json,
    as_stream,
    cache_key,
    wants_refresh,
)
from wayport.gateway.config import CachePolicy
from wayport.gateway.context import RequestContext
from wayport.gateway.headers import RequestHeaders
from wayport.gateway.reply import JSON, SSE_HEADERS, Reply
from wayport.providers.base import Endpoint, Target
from wayport.providers.openai_shapes import wants_usage

log = logging.getLogger("wayport.cache")

CACHEABLE = frozenset({Endpoint.CHAT, Endpoint.COMPLETE, Endpoint.EMBED})
SEMANTIC = "semantic"


class CacheKey(str):
    """The exact cache key of one call (a ``str``), carrying its semantic side from ``key`` to
    ``lookup`` and ``remember``.

    ``semantic`` is set when the call uses the semantic cache; after ``lookup``, ``similarity``
    holds the cosine similarity of a ``SEMANTIC HIT`` (for the log record) and ``refresh``
    whether the client forced a refresh.
    """

    semantic: SemanticRequest | None
    similarity: float | None
    refresh: bool

    def __new__(cls, key: str, semantic: SemanticRequest | None = None) -> CacheKey:
        self = super().__new__(cls, key)
        self.semantic = semantic
        self.similarity = None
        self.refresh = False
        return self


class GatewayCache:
    def __init__(self, cache: ResponseCache, semantic: SemanticCache | None = None) -> None:
        if semantic is not None and semantic.cache is not cache:
            raise ValueError("the semantic cache must store its answers in the same response cache")
        self.cache = cache
        self.semantic = semantic
        self._pending: set[asyncio.Task[Any]] = set()
        self._said_no_semantic = False

    @property
    def pending(self) -> int:
        """Stores still running in the background."""
        return len(self._pending)

    def key(
        self,
        ctx: RequestContext,
        policy: CachePolicy | None,
        endpoint: Endpoint,
        headers: RequestHeaders,
        target: Target,
        params: Mapping[str, Any],
    ) -> CacheKey | None:
        """The cache key of this call, or ``None`` when caching does not apply (``DISABLED``)."""
        if policy is None or endpoint not in CACHEABLE:
            return None
        if headers.portkey.get("debug", "").strip().lower() == "false":
            return None
        options = target.options
        where = target.custom_host or options.get("deployment_id") or options.get("resource_name")
        namespace = headers.portkey.get("cache-namespace")
        # nothing crosses workspaces: an answer cached for one is never served to another
        workspace = ctx.principal.workspace(None) if ctx.principal is not None else None
        exact = cache_key(
            provider=target.provider,
            endpoint=endpoint.value,
            params=params,
            metadata=ctx.metadata,
            namespace=namespace,
            workspace=workspace,
            target=str(where) if where else None,
        )
        if policy.mode != SEMANTIC:
            return CacheKey(exact)
        semantic = self.semantic
        if semantic is None:
            if not self._said_no_semantic:
                self._said_no_semantic = True
                log.warning(
                    "a config asks for semantic caching but no embedder is available (install the "
                    "'semantic' extra: pip install 'wayport[semantic]'); caching by exact match only"
                )
            return CacheKey(exact)
        request = semantic.request(
            exact_key=exact,
            provider=target.provider,
            endpoint=endpoint.value,
            params=params,
            metadata=ctx.metadata,
            namespace=namespace,
            workspace=workspace,
            target=str(where) if where else None,
        )
        return CacheKey(exact, request)

    async def lookup(
        self, ctx: RequestContext, key: str, headers: RequestHeaders, params: Mapping[str, Any], stream: bool
    ) -> Reply | None:
        """A replayed hit, or ``None`` (``MISS``/``SEMANTIC MISS``, or ``REFRESH`` when the client
        forces one). A semantic hit leaves its similarity on ``key.similarity``."""
        request = key.semantic if isinstance(key, CacheKey) else None
        if wants_refresh(headers.portkey.get("cache-force-refresh")):
            ctx.cache_status = CacheStatus.REFRESH
            if isinstance(key, CacheKey):
                key.refresh = True
            return None
        entry = await self.cache.lookup(key)
        if entry is not None:
            ctx.cache_status = CacheStatus.HIT
            return _replay_entry(entry, params, stream)
        if request is None or self.semantic is None:
            ctx.cache_status = CacheStatus.MISS
            return None
        match = await self.semantic.lookup(request)
        if match is None:
            ctx.cache_status = CacheStatus.SEMANTIC_MISS
            return None
        ctx.cache_status = CacheStatus.SEMANTIC_HIT
        if isinstance(key, CacheKey):
            key.similarity = match.similarity
        return _replay_entry(match.entry, params, stream)

    def remember(self, reply: Reply, key: str, policy: CachePolicy, namespace: str | None) -> Reply:
        """Store a 2xx answer without delaying it: JSON at once in the background, a stream as it
        is relayed (stored only when it ends normally). A semantic request's answer is also
        indexed by its question."""
        if not 200 <= reply.status < 300 or reply.native:
            return reply
        if reply.stream is None:
            self._spawn(self._store_body(key, reply.body, reply.status, policy, namespace))
            return reply
        recorder = self.cache.recorder(status=reply.status)
        reply.stream = self._recording(reply.stream, recorder, key, policy, namespace)
        return reply

    async def _store_body(
        self, key: str, body: bytes, status: int, policy: CachePolicy, namespace: str | None
    ) -> bool:
        entry = Entry.from_response(body, status=status)
        if entry is None:  # an error in a 200, or an answer of a kind the cache does not keep
            self.cache.stats.skipped += 1
            return False
        return await self._store(key, entry, policy, namespace)

    async def _store(self, key: str, entry: Entry, policy: CachePolicy, namespace: str | None) -> bool:
        request = key.semantic if isinstance(key, CacheKey) else None
        if request is not None and self.semantic is not None:
            refresh = isinstance(key, CacheKey) and key.refresh
            return await self.semantic.store(request, entry, policy.max_age, namespace, refresh=refresh)
        return await self.cache.store(key, entry, policy.max_age, namespace)

    async def _recording(
        self,
        stream: AsyncIterator[bytes],
        recorder: StreamRecorder,
        key: str,
        policy: CachePolicy,
        namespace: str | None,
    ) -> AsyncIterator[bytes]:
        completed = False
        try:
            async for chunk in stream:
                recorder.feed(chunk)
                yield chunk
            completed = True
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            if completed:
                entry = recorder.finish()
                if entry is not None:
                    self._spawn(self._store(key, entry, policy, namespace))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.cache.close()


def _replay_entry(entry: Entry, params: Mapping[str, Any], stream: bool) -> Reply:
    """A cached answer in the shape the client asked for (a stream or JSON)."""
    if stream and entry.kind != "embedding":
        try:
            events = as_stream(entry, wants_usage(params))
        except ValueError:
            return Reply(entry.status, [*entry.headers, JSON], as_json(entry))
        return Reply(entry.status, [*entry.headers, *SSE_HEADERS], stream=_replay(events))
    return Reply(entry.status, [*entry.headers, JSON], as_json(entry))


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(events)
