"""Sharing the semantic index between gateway nodes through a Redis stream.

Each node keeps its question vectors in memory (``CosineIndex``); the answers themselves are in
the shared backend. Every indexed question is also appended to one Redis stream (bounded), which
serves two purposes: a node starting up reads the stream to rebuild its index, and running nodes
follow the stream to index the questions other nodes answered. So a question answered on one
node is a semantic hit on every node.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
from collections.abc import Sequence
from typing import Any

import orjson

from wayport.cache.semantic import SemanticCache

log = logging.getLogger("wayport")

STREAM = "wayport:semantic:index"
MAX_LENGTH = 50_000  # about the entries a node keeps (CosineIndex's default bound)


class SemanticSync:
    def __init__(self, redis: Any, semantic: SemanticCache, stream: str = STREAM) -> None:
        self._redis = redis
        self._semantic = semantic
        self._stream = stream
        semantic.announce = self.publish

    async def publish(
        self, partition: str, key: str, text: str, vector: Sequence[float], ttl_s: float
    ) -> None:
        """Append a question this node indexed; failures only cost the other nodes a hit."""
        payload = {
            "p": partition,
            "k": key,
            "t": text,
            "v": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode(),
            "x": time.time() + ttl_s,
        }
        try:
            await self._redis.xadd(
                self._stream, {"e": orjson.dumps(payload)}, maxlen=MAX_LENGTH, approximate=True
            )
        except Exception:
            log.warning("could not share a semantic cache entry through Redis", exc_info=True)

    async def run(self) -> None:
        """Index what the stream holds, then follow it (run as a task; cancel to stop)."""
        last = "0-0"
        while True:
            try:
                if last == "0-0":
                    for entry_id, fields in await self._redis.xrange(self._stream):
                        self._index(fields)
                        last = entry_id
                    if last == "0-0":
                        last = "$"
                for _, entries in await self._redis.xread({self._stream: last}, block=5000, count=500) or ():
                    for entry_id, fields in entries:
                        self._index(fields)
                        last = entry_id
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost the semantic index stream; retrying in a second", exc_info=True)
                await asyncio.sleep(1)

    def _index(self, fields: Any) -> None:
        try:
            raw = fields.get(b"e") or fields.get("e")
            entry = orjson.loads(raw)
            ttl = float(entry["x"]) - time.time()
            if ttl <= 0:
                return
            data = base64.b64decode(entry["v"])
            vector = struct.unpack(f"<{len(data) // 4}f", data)
            self._semantic.index.add(entry["p"], entry["k"], entry["t"], vector, ttl)
        except (KeyError, TypeError, ValueError, struct.error, orjson.JSONDecodeError):
            log.warning("skipped an unreadable semantic index entry")
