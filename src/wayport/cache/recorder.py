"""Recording a streamed answer for the cache while it is relayed to the client."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from wayport.cache.assemble import ChunkAssembler
from wayport.cache.entry import Entry, keep_headers

DEFAULT_MAX_STREAM_BYTES = 16 * 1024 * 1024


class StreamRecorder:
    """Builds a cache entry from the SSE bytes sent to the client, chunk by chunk.

    Call ``feed`` with every chunk as it is sent and ``finish`` once the stream has ended. Each
    event is parsed once, when its last byte arrives, and merged into the answer; only a partial
    event is kept between chunks. ``finish`` returns ``None`` (nothing to cache) when the stream
    carried an error event, never reached ``data: [DONE]``, held something other than OpenAI
    chunks, or grew past ``max_bytes``; after such a verdict ``feed`` stops doing any work.
    """

    def __init__(
        self,
        *,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] = (),
        max_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        self._status = status
        self._headers = keep_headers(headers)
        self._max_bytes = max_bytes
        self._size = 0
        self._buffer = b""
        self._pending_cr = False
        self._assembler = ChunkAssembler()
        self._done = False
        self.failed: str | None = None if 200 <= status < 300 else f"status {status}"

    def feed(self, data: bytes) -> None:
        if self.failed is not None or self._done:
            return
        self._size += len(data)
        if self._size > self._max_bytes:
            self._fail(f"the stream is larger than {self._max_bytes} bytes")
            return
        if self._pending_cr or b"\r" in data:
            data = self._normalise(data)
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            if block:
                self._event(block)
                if self.failed is not None or self._done:
                    self._buffer = b""
                    return
        self._buffer = buffer[start:]

    def _normalise(self, data: bytes) -> bytes:
        """CRLF and CR line ends as LF; a CR ending the chunk waits, as it may start a CRLF."""
        if self._pending_cr:
            data = b"\r" + data
        self._pending_cr = data.endswith(b"\r")
        if self._pending_cr:
            data = data[:-1]
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _event(self, block: bytes) -> None:
        if block.startswith(b"data: ") and b"\n" not in block:
            data = block[6:]  # the one-line event every OpenAI-shaped stream sends
        else:
            fields = _fields(block)
            if fields is None:
                return  # only comments (keep-alives)
            name, data = fields
            if name not in (None, "message"):
                self._fail(f"a '{name}' event is not part of an OpenAI stream")
                return
        if data == b"[DONE]":
            self._done = True
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._fail("an event is not JSON")
            return
        if not isinstance(payload, dict) or "error" in payload:
            self._fail("the stream carried an error event")
        elif not self._assembler.add(payload):
            self._fail("an event is not an OpenAI chunk")

    def finish(self) -> Entry | None:
        """The entry for the complete answer, or ``None`` when it must not be cached."""
        if self.failed is not None:
            return None
        rest = self._buffer.strip(b"\n")
        if not self._done and rest:
            self._buffer = b""
            self._event(rest)  # a last event without its blank line
            if self.failed is not None:
                return None
        if not self._done:
            self._fail("the stream ended without [DONE]")
            return None
        answer, pieces = self._assembler.result()
        if not answer["choices"] or self._assembler.kind is None:
            self._fail("the stream held no answer")
            return None
        return Entry(
            orjson.dumps(answer),
            self._assembler.kind,
            self._status,
            self._headers,
            pieces or None,
            streamed=True,
        )

    def _fail(self, reason: str) -> None:
        self.failed = reason
        self._buffer = b""


def _fields(block: bytes) -> tuple[str | None, bytes] | None:
    """The event name and data of a multi-line SSE event; ``None`` when it has no data."""
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    return (name, b"\n".join(data)) if data else None
