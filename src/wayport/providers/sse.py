"""Incremental decoders for the stream framings providers use: SSE (with ``\\n``, ``\\r\\n`` or
``\\r`` line ends, as Gemini's CRLF streams) and newline-delimited JSON (Ollama)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Feed bytes as they arrive; get back the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, found = self._next_line()
            if not found:
                return events
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event, "\n".join(self._data)))
                self._event, self._data = None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value

    def close(self) -> list[SSEEvent]:
        """Events left at EOF (a last event without its blank line)."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        self._buffer = b""
        return events

    def _next_line(self) -> tuple[str, bool]:
        buffer = self._buffer
        match = _LINE_END.search(buffer)
        if match is None or (match.group() == b"\r" and match.end() == len(buffer)):
            return "", False  # no line end yet, or a \r that may be the start of \r\n
        self._buffer = buffer[match.end() :]
        return buffer[: match.start()].decode("utf-8", "replace"), True


class LineDecoder:
    """Splits a byte stream into complete lines (NDJSON), keeping a partial line for later."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []
