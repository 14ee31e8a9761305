"""The response cache as the data plane uses it: look up before a target is called, replay a hit
(as JSON or as a stream, whichever the client asked for), and store a fresh 2xx answer off the
request path (a stream once it has completed normally)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from wayport.cache import (
    CacheStatus,
    ResponseCache,
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

CACHEABLE = frozenset({Endpoint.CHAT, Endpoint.COMPLETE, Endpoint.EMBED})


class GatewayCache:
    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._pending: set[asyncio.Task[Any]] = set()

    def key(
        self,
        ctx: RequestContext,
        policy: CachePolicy | None,
        endpoint: Endpoint,
        headers: RequestHeaders,
        target: Target,
        params: Mapping[str, Any],
    ) -> str | None:
        """The cache key of this call, or ``None`` when caching does not apply (``DISABLED``)."""
        if policy is None or endpoint not in CACHEABLE:
            return None
        if headers.portkey.get("debug", "").strip().lower() == "false":
            return None
        options = target.options
        where = target.custom_host or options.get("deployment_id") or options.get("resource_name")
        return cache_key(
            provider=target.provider,
            endpoint=endpoint.value,
            params=params,
            metadata=ctx.metadata,
            namespace=headers.portkey.get("cache-namespace"),
            target=str(where) if where else None,
        )

    async def lookup(
        self, ctx: RequestContext, key: str, headers: RequestHeaders, params: Mapping[str, Any], stream: bool
    ) -> Reply | None:
        """A replayed hit, or ``None`` (``MISS``, or ``REFRESH`` when the client forces one)."""
        if wants_refresh(headers.portkey.get("cache-force-refresh")):
            ctx.cache_status = CacheStatus.REFRESH
            return None
        entry = await self.cache.lookup(key)
        if entry is None:
            ctx.cache_status = CacheStatus.MISS
            return None
        ctx.cache_status = CacheStatus.HIT
        if stream and entry.kind != "embedding":
            try:
                events = as_stream(entry, wants_usage(params))
            except ValueError:
                return Reply(entry.status, [*entry.headers, JSON], as_json(entry))
            return Reply(entry.status, [*entry.headers, *SSE_HEADERS], stream=_replay(events))
        return Reply(entry.status, [*entry.headers, JSON], as_json(entry))

    def remember(self, reply: Reply, key: str, policy: CachePolicy, namespace: str | None) -> Reply:
        """Store a 2xx answer without delaying it: JSON at once in the background, a stream as it
        is relayed (stored only when it ends normally)."""
        if not 200 <= reply.status < 300 or reply.native:
            return reply
        if reply.stream is None:
            self._spawn(
                self.cache.store_response(
                    key,
                    reply.body,
                    status=reply.status,
                    headers=(),
                    max_age_s=policy.max_age,
                    namespace=namespace,
                )
            )
            return reply
        recorder = self.cache.recorder(status=reply.status)
        reply.stream = self._recording(reply.stream, recorder, key, policy, namespace)
        return reply

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
                    self._spawn(self.cache.store(key, entry, policy.max_age, namespace))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.cache.close()


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(events)
