"""Relaying a provider's stream to the client as it arrives.

An SSE stream always ends with ``data: [DONE]``: when the provider stops early or the connection
breaks, the client first gets an error event (which the OpenAI SDK raises), never a silently
truncated answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from wayport.providers.base import StreamTranslator

DONE = b"data: [DONE]\n\n"
TAIL = 24


def sse_error(message: str, type_: str = "stream_error") -> bytes:
    payload = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": None}})
    return b"data: " + payload + b"\n\n" + DONE


async def relay_stream(
    response: aiohttp.ClientResponse, translator: StreamTranslator | None, *, sse: bool
) -> AsyncIterator[bytes]:
    """Yield the body of ``response`` chunk by chunk (translated when a translator is given)."""
    tail = b""
    clean = False
    try:
        async for chunk in response.content.iter_any():
            if translator is not None:
                chunk = translator.feed(chunk)
                if not chunk:
                    continue
            if sse:
                tail = (tail + chunk)[-TAIL:]
            yield chunk
        if translator is not None:
            rest = translator.close()
            if rest:
                tail = (tail + rest)[-TAIL:]
                yield rest
        clean = True
        if sse and not tail.rstrip().endswith(b"[DONE]"):
            yield sse_error("The provider closed the stream before it was complete")
    except (TimeoutError, aiohttp.ClientError) as exc:
        if sse:
            yield sse_error(f"The connection to the provider broke mid-stream ({type(exc).__name__})")
    finally:
        if clean:
            response.release()
        else:
            response.close()
