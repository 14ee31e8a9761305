"""Gemini's ``streamGenerateContent?alt=sse`` stream -> OpenAI ``chat.completion.chunk`` events.

Every SSE event (CRLF-framed) is a whole ``GenerateContentResponse`` carrying the next piece of
text, complete function calls, and on the last event the ``finishReason``; ``usageMetadata`` is
a running total, so the last one seen is the usage. The stream ends when the connection closes:
there is no terminator event, so a stream that closes before any ``finishReason`` is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.providers.gemini_response import failure_message, finish_reason, gemini_usage, tool_call
from wayport.providers.openai_shapes import DONE, ChunkWriter, usage
from wayport.providers.sse import SSEDecoder


class GeminiStreamTranslator:
    """Translates one Gemini stream as it arrives; one instance per stream."""

    def __init__(self, params: Mapping[str, Any], *, provider: str, strict: bool) -> None:
        self.writer = ChunkWriter(params, provider)
        self.strict = strict
        self._decoder = SSEDecoder()
        self._first = True
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}
        self._finished: set[int] = set()
        self._usage: Mapping[str, Any] | None = None
        self._over = False  # an error event (with its [DONE]) was written

    def feed(self, data: bytes) -> bytes:
        if self._over:
            return b""
        out = bytearray()
        for event in self._decoder.feed(data):
            out += self._event(event.data)
            if self._over:
                break
        return bytes(out)

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.writer.usage

    def close(self) -> bytes:
        if self._over:
            return b""
        out = bytearray()
        for event in self._decoder.close():
            out += self._event(event.data)
            if self._over:
                return bytes(out)
        if not self._finished:
            out += self.writer.error("the stream ended before Gemini sent a finishReason", "stream_error")
            self._over = True
            return bytes(out)
        out += self.writer.usage_chunk(gemini_usage(self._usage) or usage(0, 0))
        return bytes(out + DONE)

    # -- events -----------------------------------------------------------------------------

    def _fail(self, message: str, type_: Any = None, code: Any = None) -> bytes:
        self._over = True
        return self.writer.error(message, type_, code)

    def _event(self, raw: str) -> bytes:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._fail(f"invalid JSON in the stream: {raw[:120]}", "stream_error")
        if not isinstance(data, dict):
            return self._fail(f"unexpected stream event: {raw[:120]}", "stream_error")
        error = data.get("error")
        if isinstance(error, dict):
            return self._fail(str(error.get("message", error)), error.get("status"), error.get("code"))
        if self._first:
            self._first = False
            if data.get("modelVersion"):
                self.writer.model = str(data["modelVersion"])
            if data.get("responseId"):
                self.writer.id = str(data["responseId"])
        if data.get("usageMetadata"):
            self._usage = data["usageMetadata"]
        candidates = data.get("candidates")
        if not candidates:
            block = (data.get("promptFeedback") or {}).get("blockReason")
            if block and 0 not in self._finished:
                self._finished.add(0)
                reason = "content_filter" if self.strict else str(block)
                return self._role(0) + self.writer.chunk({}, reason)
            return b""
        out = bytearray()
        for position, candidate in enumerate(candidates):
            out += self._candidate(candidate, position)
            if self._over:
                break
        return bytes(out)

    def _role(self, index: int) -> bytes:
        if index in self._started:
            return b""
        self._started.add(index)
        return self.writer.chunk({"role": "assistant", "content": ""}, index=index)

    def _candidate(self, candidate: Mapping[str, Any], position: int) -> bytes:
        failed = failure_message(candidate)
        if failed:
            return self._fail(failed, candidate.get("finishReason"))
        index = int(candidate.get("index", position))
        out = bytearray(self._role(index))
        writer = self.writer
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                n = self._tool_calls.get(index, 0)
                self._tool_calls[index] = n + 1
                # Gemini sends a call whole, so its only fragment carries id, name and arguments.
                out += writer.chunk({"tool_calls": [{"index": n, **tool_call(part)}]}, index=index)
            elif "text" in part and part["text"]:
                if not part.get("thought"):
                    out += writer.chunk({"content": part["text"]}, index=index)
                elif not self.strict:
                    block = {"index": 0, "delta": {"thinking": part["text"]}}
                    out += writer.chunk({"content_blocks": [block]}, index=index)
        raw = candidate.get("finishReason")
        if raw and index not in self._finished:
            self._finished.add(index)
            reason = finish_reason(raw, self._tool_calls.get(index, 0) > 0, self.strict)
            out += writer.chunk({}, reason, index=index)
        return bytes(out)
