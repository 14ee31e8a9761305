"""Relaying a provider's stream to the client as it arrives.

An SSE stream always ends with ``data: [DONE]``: when the provider stops early, stalls or the
connection breaks, the client first gets an error event (which the OpenAI SDK raises), never a
silently truncated answer. Before the first real content nothing is sent to the client, so a
target that fails that early can still be retried or fallen over from (``first_content``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import orjson

from wayport.gateway.http1 import Response, UpstreamError
from wayport.providers.base import StreamTranslator

log = logging.getLogger("wayport")

DONE = b"data: [DONE]\n\n"
TAIL = 24


class StreamFailed(Exception):
    """The stream failed before it produced any content; ``message`` says how."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sse_error(message: str, type_: str = "stream_error") -> bytes:
    payload = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": None}})
    return b"data: " + payload + b"\n\n" + DONE


class UsageSource(Protocol):
    """Anything that knows a stream's usage once it has passed (a translator or a ``UsageTap``)."""

    @property
    def usage(self) -> Mapping[str, Any] | None: ...


class UsageTap:
    """Reads the usage of an OpenAI-shaped stream as it passes, at event boundaries.

    Wayport asks every provider for the usage chunk (cost needs it); when the client did not ask
    for ``stream_options.include_usage``, ``strip`` removes that chunk again before it is sent.
    Events are passed on whole: a partial event waits for its end (clients cannot use half an
    event anyway).
    """

    __slots__ = ("_pending", "strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: dict[str, Any] | None = None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        if data.endswith(b"\n\n"):  # the usual chunk: whole events
            complete, self._pending = data, b""
        else:
            cut = data.rfind(b"\n\n")
            if cut < 0:
                self._pending = data
                return b""
            complete, self._pending = data[: cut + 2], data[cut + 2 :]
        if b'"usage":{' not in complete and b'"usage": {' not in complete:
            return complete  # not the usage chunk (streams with include_usage say "usage":null)
        kept = []
        for event in complete.split(b"\n\n")[:-1]:
            payload = event.partition(b"data:")[2].strip()
            if b'"usage"' in payload and payload.startswith(b"{"):
                try:
                    parsed = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict):
                    self.usage = parsed["usage"]
                    if self.strip and parsed.get("choices") == []:
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest


async def relay_stream(
    response: Response,
    translator: StreamTranslator | None,
    *,
    sse: bool,
    stall_s: float | None = None,
    tap: UsageTap | None = None,
) -> AsyncIterator[bytes]:
    """Yield the body of ``response`` chunk by chunk (translated when a translator is given).

    ``stall_s`` bounds each wait for the provider's next chunk, never the time the consumer
    takes to write a chunk to a slow client. ``tap`` sees (and may trim) every translated chunk.
    """
    tail = b""
    clean = False
    try:
        while chunk := await response.next_chunk(stall_s):
            if translator is not None:
                chunk = translator.feed(chunk)
            if tap is not None:
                chunk = tap.feed(chunk)
            if not chunk:
                continue
            if sse:
                tail = (tail + chunk)[-TAIL:]
            yield chunk
        rest = translator.close() if translator is not None else b""
        if tap is not None:
            rest = tap.feed(rest) + tap.close()
        if rest:
            tail = (tail + rest)[-TAIL:]
            yield rest
        clean = True
        if sse and not tail.rstrip().endswith(b"[DONE]"):
            yield sse_error("The provider closed the stream before it was complete")
    except TimeoutError:
        if sse:
            yield sse_error(f"The provider sent nothing for {stall_s:g} s mid-stream; the stream was ended")
    except UpstreamError as exc:
        if sse:
            yield sse_error(f"The connection to the provider broke mid-stream ({type(exc).__name__})")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.warning("could not translate a stream chunk: %r", exc)
        if sse:
            yield sse_error(f"The provider sent stream data that could not be read ({type(exc).__name__})")
    finally:
        if clean:
            response.release()
        else:
            response.close()


async def first_content(stream: AsyncIterator[bytes]) -> bytes:
    """Read ``stream`` until it has produced real content (or ended), and return what was read.

    Raises ``StreamFailed`` (after closing the stream) when an error event comes first, so the
    caller can retry or fall over without the client seeing anything.
    """
    buffered = b""
    async for chunk in stream:
        buffered += chunk
        verdict = _judge(buffered)
        if verdict is True:
            return buffered
        if isinstance(verdict, str):
            await stream.aclose()  # type: ignore[attr-defined]
            raise StreamFailed(verdict)
    return buffered


def _judge(buffered: bytes) -> bool | str | None:
    """``True`` once a complete event carries content (or the end), an error message if an error
    event came first, ``None`` while only preambles (the role announcement) have arrived."""
    for block in buffered.split(b"\n\n")[:-1]:
        data = block.partition(b"data:")[2].strip()
        if not data:
            continue
        if data == b"[DONE]":
            return True
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True  # not ours to judge: let the client see it
        if not isinstance(event, dict):
            return True
        error = event.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            return str(message or "the provider sent an error event")
        if event.get("usage") or _has_content(event):
            return True
    return None


def _has_content(event: dict[str, object]) -> bool:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return True
    for choice in choices:
        if not isinstance(choice, dict):
            return True
        if choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            value for key, value in delta.items() if key not in ("role",) and value not in ("", None)
        ):
            return True
    return False


async def prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``first`` then the remainder of ``rest``; closing this closes ``rest``."""
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
