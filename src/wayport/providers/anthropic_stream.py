"""Anthropic's SSE stream (``event: message_start`` ... ``message_stop``) -> OpenAI chunks, as the
bytes arrive (reference/providers.md §3, "Streaming")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.providers.anthropic_response import THINKING_BLOCKS, finish_reason, openai_usage
from wayport.providers.openai_shapes import DONE, ChunkWriter
from wayport.providers.sse import SSEDecoder, SSEEvent


class AnthropicStreamTranslator:
    """Translates one Anthropic stream into ``chat.completion.chunk`` events.

    Tool calls get OpenAI indexes 0, 1, … in the order their blocks start (Anthropic's block
    index counts text and thinking blocks too). ``message_delta`` usage is cumulative, so the
    last value wins. ``ping`` and ``content_block_stop`` produce nothing; an ``error`` event
    becomes an error event and ``[DONE]``; EOF before ``message_stop`` is an error too.
    With ``strict=False`` thinking arrives as ``delta.content_blocks`` (Portkey's extension).
    """

    def __init__(self, params: Mapping[str, Any], *, provider: str, strict: bool) -> None:
        self._writer = ChunkWriter(params, provider)
        self._strict = strict
        self._decoder = SSEDecoder()
        self._started = False
        self._done = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._usage: dict[str, Any] = {}
        self._stop_reason: Any = None

    def feed(self, data: bytes) -> bytes:
        if self._done:
            return b""
        return self._translate(self._decoder.feed(data))

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._writer.usage

    def close(self) -> bytes:
        if self._done:
            return b""
        out = self._translate(self._decoder.close())
        if not self._done:
            self._done = True
            out += self._writer.error("the stream ended before its message_stop event", "stream_error")
        return out

    def _translate(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._done:
                break
            out.append(self._event(event))
        return b"".join(out)

    def _event(self, event: SSEEvent) -> bytes:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self._fail(f"invalid stream event: {event.data[:200]!r}", "invalid_response")
        if not isinstance(data, dict):
            return self._fail(f"invalid stream event: {event.data[:200]!r}", "invalid_response")
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            return self._message_start(data.get("message") or {})
        if kind == "message_delta":
            delta = data.get("delta") or {}
            if delta.get("stop_reason"):
                self._stop_reason = delta["stop_reason"]
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            return b""
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            error = data.get("error") or {}
            return self._fail(str(error.get("message") or "stream error"), error.get("type"))
        return b""  # ping, content_block_stop and event types added later

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._writer.chunk({"role": "assistant", "content": ""})

    def _message_start(self, message: Mapping[str, Any]) -> bytes:
        if not self._started:
            if message.get("id"):
                self._writer.id = str(message["id"])
            if message.get("model"):
                self._writer.model = str(message["model"])
        self._usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
        return self._start()

    def _block_start(self, data: Mapping[str, Any]) -> bytes:
        block = data.get("content_block") or {}
        index = int(data.get("index") or 0)
        kind = block.get("type")
        out = self._start()
        if kind == "tool_use":
            tool = self._tool_index[index] = len(self._tool_index)
            head = {
                "index": tool,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return out + self._writer.chunk({"tool_calls": [head]})
        if kind == "text" and block.get("text"):
            return out + self._text(index, block["text"])
        if kind in THINKING_BLOCKS and not self._strict:
            fields = {k: v for k, v in block.items() if k != "type"}
            return out + self._writer.chunk({"content_blocks": [{"index": index, "delta": fields}]})
        return out

    def _block_delta(self, data: Mapping[str, Any]) -> bytes:
        delta = data.get("delta") or {}
        index = int(data.get("index") or 0)
        kind = delta.get("type")
        out = self._start()
        if kind == "text_delta":
            return out + self._text(index, delta.get("text") or "")
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            tool = self._tool_index.get(index)
            if not fragment or tool is None:
                return out
            call = {"index": tool, "function": {"arguments": fragment}}
            return out + self._writer.chunk({"tool_calls": [call]})
        if kind in ("thinking_delta", "signature_delta") and not self._strict:
            fields = {k: v for k, v in delta.items() if k != "type"}
            return out + self._writer.chunk({"content_blocks": [{"index": index, "delta": fields}]})
        return out  # citations and thinking in strict mode have no OpenAI equivalent

    def _text(self, index: int, text: str) -> bytes:
        if not text:
            return b""
        delta: dict[str, Any] = {"content": text}
        if not self._strict:
            delta["content_blocks"] = [{"index": index, "delta": {"text": text}}]
        return self._writer.chunk(delta)

    def _finish(self) -> bytes:
        self._done = True
        writer = self._writer
        return (
            self._start()
            + writer.chunk({}, finish_reason(self._stop_reason, self._strict))
            + writer.usage_chunk(openai_usage(self._usage))
            + DONE
        )

    def _fail(self, message: str, type_: Any) -> bytes:
        self._done = True
        return self._writer.error(message, type_)
