"""A streamed answer as the client put it together: the SSE text of a log turned back into the
one JSON answer (the cache's stream assembler does the merging)."""

from __future__ import annotations

from typing import Any

import orjson

from wayport.cache.assemble import ChunkAssembler


def reassembled(sse: str | None) -> Any:
    """The complete answer of an OpenAI-shaped event stream; the text itself when it is not one
    (another format, or cut short by the log's body limit)."""
    if not sse:
        return sse
    assembler = ChunkAssembler()
    seen = False
    for block in sse.split("\n\n"):
        payload = block.partition("data:")[2].strip()
        if not payload or payload == "[DONE]":
            continue
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return sse
        if not isinstance(event, dict) or not assembler.add(event):
            return sse
        seen = True
    if not seen:
        return sse
    answer, _ = assembler.result()
    return answer
