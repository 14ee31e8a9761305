"""The Anthropic Messages format as an ingress: an Anthropic request in, the OpenAI chat request the
gateway routes out; the OpenAI answer, stream or error back in Anthropic's shapes.

The reverse of ``providers/anthropic_*``: any provider Wayport reaches can serve a client of the
``anthropic`` SDK. Pure functions over dicts and bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.providers.openai_shapes import new_id
from wayport.providers.sse import SSEDecoder

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's own reasons pass through (a non-strict gateway answer carries them raw).
ANTHROPIC_STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ANTHROPIC_ERROR_TYPES = frozenset({*ERROR_TYPES.values(), "api_error"})


# -- request: Anthropic -> OpenAI -------------------------------------------------------------


def messages_to_openai(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request -> an OpenAI chat request.

    ``system`` becomes a system message; ``tool_result`` blocks become ``tool`` messages placed
    before the rest of their user turn; ``tool_use`` blocks become ``tool_calls``. Thinking
    blocks and ``cache_control`` have no OpenAI equivalent and are dropped; ``top_k`` and
    ``thinking`` are passed on for the providers that take them.
    """
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise BadRequest("messages: Field required (a list of user and assistant turns)")
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for turn in raw_messages:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise BadRequest("each message needs a role of 'user' or 'assistant'")
        if turn["role"] == "user":
            messages.extend(_user_messages(turn.get("content")))
        else:
            messages.append(_assistant_message(turn.get("content")))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "top_k", "thinking"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        out["user"] = str(metadata["user_id"])
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools:
        out["tools"] = [_function_tool(t) for t in tools]
        if isinstance(choice, dict):
            _apply_tool_choice(choice, out)
    if body.get("stream") is True:
        out["stream"] = True
        # usage arrives in Anthropic's message_delta, so ask every provider for it
        out["stream_options"] = {"include_usage": True}
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """One user turn -> the ``tool`` messages of its tool results, then the user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of content blocks")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            text, images = _tool_result_content(block.get("content"))
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
            # OpenAI tool messages take text only: images a tool returned follow in the user turn
            parts.extend(images)
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.append(_user_part(block))
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _user_part(block: Any) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise BadRequest("each content block must be an object")
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source_url(block.get("source"))}}
    if kind == "document":
        return _document_part(block.get("source"))
    raise BadRequest(f"content blocks of type '{kind}' cannot be translated for this provider")


def _source_url(source: Any) -> str:
    if isinstance(source, dict):
        if source.get("type") == "base64":
            return f"data:{source.get('media_type')};base64,{source.get('data')}"
        if source.get("type") == "url":
            return str(source.get("url"))
    raise BadRequest("an image source must be of type 'base64' or 'url'")


def _document_part(source: Any) -> dict[str, Any]:
    if isinstance(source, dict) and source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    if isinstance(source, dict) and source.get("type") == "base64":
        data_url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "file", "file": {"filename": "document.pdf", "file_data": data_url}}
    raise BadRequest("documents can be translated only with a 'base64' or 'text' source")


def _tool_result_content(content: Any) -> tuple[str, list[dict[str, Any]]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "image":
            images.append(_user_part(block))
    return "\n".join(texts), images


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of content blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _function_tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or "name" not in tool:
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise BadRequest(f"tool type '{kind}' is Anthropic's own and cannot be translated for this provider")
    function: dict[str, Any] = {
        "name": tool["name"],
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _apply_tool_choice(choice: Mapping[str, Any], out: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False


# -- response: OpenAI -> Anthropic ------------------------------------------------------------


def stop_reason_of(finish_reason: Any) -> str:
    if finish_reason in ANTHROPIC_STOP_REASONS:
        return str(finish_reason)
    return STOP_REASONS.get(str(finish_reason), "end_turn")


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI usage -> Anthropic's, whose ``input_tokens`` excludes cache reads and writes."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = int(details.get("cached_tokens") or 0)
    created = int(details.get("cache_creation_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached - created, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
    }


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if arguments else {}
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def openai_to_messages(data: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` -> an Anthropic ``message`` (first choice).

    ``model`` is the name the client asked for. Tool-call arguments are parsed into ``input``
    (``{}`` when the provider sent something that is not a JSON object).
    """
    choices = data.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": function.get("name"),
                "input": _tool_input(function.get("arguments")),
            }
        )
    return {
        "id": str(data.get("id") or new_id("msg")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_of(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(data.get("usage")),
    }


def openai_error_to_messages(status: int, body: bytes) -> bytes:
    """An OpenAI-shaped (or gateway ``{"status":"failure","message"}``) error -> Anthropic's
    ``{"type":"error","error":{"type","message"}}``; the type follows the status unless the
    body already names one of Anthropic's types."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    message = body.decode("utf-8", "replace").strip() or f"HTTP {status}"
    upstream_type: Any = None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            found = error.get("message")
            if found is not None:
                message = found if isinstance(found, str) else orjson.dumps(found).decode()
            upstream_type = error.get("type")
        elif isinstance(error, str):
            message = error
    return orjson.dumps(
        {"type": "error", "error": {"type": _error_type(status, upstream_type), "message": message}}
    )


def _error_type(status: int, upstream_type: Any) -> str:
    if upstream_type in ANTHROPIC_ERROR_TYPES:
        return str(upstream_type)
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


# -- stream: OpenAI chunks -> Anthropic events ------------------------------------------------


def _event(name: str, payload: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class OpenAIToMessagesStream:
    """OpenAI ``chat.completion.chunk`` SSE in, Anthropic Messages SSE out, as bytes arrive.

    Content arrives as blocks: a text block while text deltas come, one ``tool_use`` block per
    tool call (its argument fragments as ``input_json_delta``). The ``message_delta`` carries
    the stop reason and the usage of the final usage chunk. An OpenAI error event becomes an
    ``event: error``; a stream that ends with neither a finish reason nor ``[DONE]`` too.
    """

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._decoder = SSEDecoder()
        self._started = False
        self._done = False
        self._blocks = 0  # Anthropic blocks opened so far
        self._open: int | None = None  # the block now open
        self._open_kind: str | None = None
        self._tools: dict[int, int] = {}  # OpenAI tool index -> Anthropic block index
        self._finish: Any = None
        self._usage: Any = None

    def feed(self, data: bytes) -> bytes:
        if self._done:
            return b""
        return self._translate(self._decoder.feed(data))

    def close(self) -> bytes:
        if self._done:
            return b""
        out = self._translate(self._decoder.close())
        if self._done:
            return out
        if self._finish is not None:
            return out + self._end()
        return out + self._fail("api_error", "The stream ended before it was complete")

    def _translate(self, events: list[Any]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._done:
                break
            out.append(self._data(event.data))
        return b"".join(out)

    def _data(self, data: str) -> bytes:
        if data.strip() == "[DONE]":
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail("api_error", f"invalid stream chunk: {data[:200]}")
        if not isinstance(chunk, dict):
            return b""
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            upstream = error.get("type") if isinstance(error, dict) else None
            return self._fail(_error_type(500, upstream), str(message or "stream error"))
        out = self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Anthropic has one answer; n > 1 is not translatable
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text(str(delta["content"]))
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": str(chunk.get("id") or new_id("msg")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        index = self._blocks
        self._blocks += 1
        self._open, self._open_kind = index, kind
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return out + _event("content_block_start", start)

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._open_kind = self._open, None, None
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open_kind != "text":
            out = self._open_block("text", {"type": "text", "text": ""})
        delta = {
            "type": "content_block_delta",
            "index": self._open,
            "delta": {"type": "text_delta", "text": text},
        }
        return out + _event("content_block_delta", delta)

    def _tool_call(self, call: Mapping[str, Any]) -> bytes:
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        out = b""
        if position not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": function.get("name") or "",
                "input": {},
            }
            out = self._open_block("tool_use", block)
            self._tools[position] = self._blocks - 1
        fragment = function.get("arguments")
        if fragment:
            # A fragment of an earlier call (providers that interleave parallel calls) still goes
            # to that call's own block index.
            delta = {
                "type": "content_block_delta",
                "index": self._tools[position],
                "delta": {"type": "input_json_delta", "partial_json": fragment},
            }
            out += _event("content_block_delta", delta)
        return out

    def _end(self) -> bytes:
        self._done = True
        out = self._start({}) + self._close_block()
        usage = anthropic_usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason_of(self._finish), "stop_sequence": None},
            "usage": usage,
        }
        return out + _event("message_delta", delta) + _event("message_stop", {"type": "message_stop"})

    def _fail(self, type_: str, message: str) -> bytes:
        self._done = True
        return _event("error", {"type": "error", "error": {"type": type_, "message": message}})
