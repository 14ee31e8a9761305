"""ConverseStream (binary event-stream frames) to OpenAI ``chat.completion.chunk`` events (§6.4).

Frames are decoded as bytes arrive and each one is translated at once. Bedrock sends the finish
(``messageStop``) before the usage (``metadata``): the finish chunk goes out at ``messageStop``,
the usage chunk and ``[DONE]`` at ``metadata``. Exception frames, a frame with a bad CRC and a
stream that ends before ``messageStop`` all end the stream with an error event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.providers.aws_eventstream import EventStreamDecoder, EventStreamError, EventStreamMessage
from wayport.providers.bedrock_converse import (
    FAILED_STOP_REASONS,
    PROVIDER,
    converse_usage,
    failed_stop_message,
    finish_reason,
)
from wayport.providers.openai_shapes import DONE, ChunkWriter


class ConverseStreamTranslator:
    """Per-stream state: the frame decoder, the OpenAI index of each tool-use block, the finish."""

    def __init__(self, params: Mapping[str, Any], strict: bool) -> None:
        self.writer = ChunkWriter(params, PROVIDER)
        self.strict = strict
        self.decoder = EventStreamDecoder()
        self.started = False
        self.stopped = False  # messageStop seen: the answer is complete
        self.done = False  # [DONE] written; everything after is ignored
        # contentBlockIndex -> OpenAI tool-call index (0, 1, ... in order of appearance)
        self.tool_index: dict[int, int] = {}

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        corrupted: EventStreamError | None = None
        try:
            messages = self.decoder.feed(data)
        except EventStreamError as exc:
            # Frames before the bad one were whole and checked: still worth sending.
            messages, corrupted = exc.complete, exc
        out = bytearray()
        for message in messages:
            try:
                out += self._translate(message)
            except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
                out += self._fail(f"Bedrock sent a frame that could not be read ({exc})", "stream_error")
            if self.done:
                return bytes(out)
        if corrupted is not None:
            out += self._fail(f"the event stream from Bedrock is corrupted ({corrupted})", "stream_error")
        return bytes(out)

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.writer.usage

    def close(self) -> bytes:
        if self.done:
            return b""
        if not self.stopped:
            return self._fail("the stream ended before the answer was complete", "stream_error")
        # messageStop came but metadata (usage) did not: the answer itself is whole.
        self.done = True
        return DONE

    # -- frames ----------------------------------------------------------------------------

    def _translate(self, message: EventStreamMessage) -> bytes:
        kind = message.message_type
        if kind == "exception":
            return self._exception(message)
        if kind == "error":
            code = message.header(":error-code") or "error"
            text = message.header(":error-message") or "Bedrock reported an error mid-stream"
            return self._fail(text, code)
        if kind != "event":
            return b""
        event = message.event_type
        payload = orjson.loads(message.payload) if message.payload else {}
        if event == "messageStart":
            return self._start()
        if event == "contentBlockStart":
            return self._start() + self._block_start(payload)
        if event == "contentBlockDelta":
            return self._start() + self._block_delta(payload)
        if event == "messageStop":
            return self._start() + self._message_stop(payload)
        if event == "metadata":
            return self._metadata(payload)
        return b""  # contentBlockStop and events added later carry nothing to translate

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return self.writer.chunk({"role": "assistant", "content": ""})

    def _block_start(self, payload: Mapping[str, Any]) -> bytes:
        use = (payload.get("start") or {}).get("toolUse")
        if not use:
            return b""
        index = self.tool_index[payload.get("contentBlockIndex", 0)] = len(self.tool_index)
        call = {
            "index": index,
            "id": use.get("toolUseId"),
            "type": "function",
            "function": {"name": use.get("name"), "arguments": ""},
        }
        return self.writer.chunk({"tool_calls": [call]})

    def _block_delta(self, payload: Mapping[str, Any]) -> bytes:
        delta = payload.get("delta") or {}
        if "text" in delta:
            return self.writer.chunk({"content": delta["text"]}) if delta["text"] else b""
        if "toolUse" in delta:
            index = self.tool_index.get(payload.get("contentBlockIndex", 0))
            fragment = delta["toolUse"].get("input", "")
            if index is None or not fragment:
                return b""
            return self.writer.chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        reasoning = delta.get("reasoningContent")
        if reasoning and not self.strict:
            # Portkey's non-strict shape for thinking deltas
            block_delta = {
                key: reasoning[key] for key in ("text", "signature", "redactedContent") if key in reasoning
            }
            if "text" in block_delta:
                block_delta["thinking"] = block_delta.pop("text")
            index = payload.get("contentBlockIndex", 0)
            return self.writer.chunk({"content_blocks": [{"index": index, "delta": block_delta}]})
        return b""

    def _message_stop(self, payload: Mapping[str, Any]) -> bytes:
        reason = payload.get("stopReason")
        if reason in FAILED_STOP_REASONS:
            return self._fail(failed_stop_message(reason), reason)
        self.stopped = True
        return self.writer.chunk({}, finish_reason(reason, self.strict))

    def _metadata(self, payload: Mapping[str, Any]) -> bytes:
        if not self.stopped:
            return b""  # usage before the end (not sent by Bedrock today): wait for messageStop
        self.done = True
        return self.writer.usage_chunk(converse_usage(payload.get("usage"))) + DONE

    def _exception(self, message: EventStreamMessage) -> bytes:
        kind = message.header(":exception-type") or "exception"
        try:
            body = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError:
            body = {}
        text = ""
        if isinstance(body, Mapping):
            text = body.get("message") or body.get("Message") or ""
            original = body.get("originalMessage")
            if original:
                text = f"{text} ({original})" if text else str(original)
        return self._fail(text or kind, kind)

    def _fail(self, text: str, type_: str) -> bytes:
        self.done = True
        return self.writer.error(text, type_)
