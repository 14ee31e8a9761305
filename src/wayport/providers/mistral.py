"""Mistral (reference/providers.md §7): OpenAI's wire format with Mistral's differences.

Mistral rejects unknown fields (422 ``extra_forbidden``), so the request is rebuilt from the
fields Mistral knows: ``seed`` -> ``random_seed``, ``max_completion_tokens`` -> ``max_tokens``,
``tool_choice: required`` -> ``any``, and tool-call ids rewritten to the 9 alphanumerics Mistral
demands (deterministically, so a conversation keeps matching ids turn after turn). Answers get the
``provider`` field and OpenAI finish reasons; the stream's usage (which Mistral puts on its last
chunk unasked) becomes OpenAI's separate usage chunk, only when ``include_usage`` was asked.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest, ProviderError, provider_error_body
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest
from wayport.providers.openai_compatible import PATHS, CompatibleSpec, OpenAICompatibleAdapter
from wayport.providers.openai_shapes import (
    DONE,
    ChunkWriter,
    encode_vector,
    max_tokens_of,
    sse,
    usage,
    wants_usage,
)
from wayport.providers.sse import SSEDecoder

NAME = "mistral-ai"
SPEC = CompatibleSpec(NAME, "https://api.mistral.ai/v1", "mistral-small-latest")

# The request fields Mistral's chat API knows; everything else is dropped before sending.
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
MESSAGE_FIELDS = {
    "system": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls", "prefix"),
    "tool": ("role", "content", "tool_call_id", "name"),
}
EMBED_FIELDS = ("model", "input", "output_dimension", "output_dtype")

STRICT_FINISH = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}

_ALPHABET = string.ascii_letters + string.digits
_VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")


# -- request --------------------------------------------------------------------------------------


def mistral_tool_id(original: Any) -> str:
    """A Mistral-valid tool-call id: valid ids stay, others map to 9 alphanumerics derived from a
    hash of the original, so the assistant's call and the tool's answer keep matching."""
    text = str(original)
    if _VALID_ID.fullmatch(text):
        return text
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def chat_request(params: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in params.items() if k in CHAT_FIELDS and v is not None}
    if "random_seed" not in body and params.get("seed") is not None:
        body["random_seed"] = params["seed"]
    max_tokens = max_tokens_of(params)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if body.get("tool_choice") == "required":
        body["tool_choice"] = "any"
    if isinstance(body.get("tools"), list):
        body["tools"] = [_tool(t) for t in body["tools"]]
    body["messages"] = mistral_messages(params.get("messages"))
    return body


def mistral_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("mistral-ai needs a non-empty 'messages' list")
    names: dict[str, str] = {}  # rewritten tool-call id -> function name
    out = []
    for message in messages:
        role = "system" if message.get("role") == "developer" else message.get("role")
        fields = MESSAGE_FIELDS.get(role)
        if fields is None:
            raise BadRequest(f"mistral-ai does not accept messages with the role {role!r}")
        native = {k: message[k] for k in fields if message.get(k) is not None}
        native["role"] = role
        if role == "assistant" and message.get("tool_calls"):
            native["tool_calls"] = [_tool_call(c, names) for c in message["tool_calls"]]
        elif role == "tool":
            native["tool_call_id"] = mistral_tool_id(message.get("tool_call_id") or "")
            if "name" not in native and native["tool_call_id"] in names:
                native["name"] = names[native["tool_call_id"]]
        out.append(native)
    return out


def _tool_call(call: Mapping[str, Any], names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    call_id = mistral_tool_id(call.get("id") or "")
    names[call_id] = str(function.get("name"))
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    native = {k: function[k] for k in ("name", "description", "parameters", "strict") if k in function}
    return {"type": "function", "function": native}


def embed_request(params: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: params[k] for k in EMBED_FIELDS if params.get(k) is not None}
    if "output_dimension" not in body and params.get("dimensions") is not None:
        body["output_dimension"] = params["dimensions"]
    return body


# -- response -------------------------------------------------------------------------------------


def finish_reason(native: Any, strict: bool) -> Any:
    if native is None or not strict:
        return native
    if native == "error":
        raise ProviderError(NAME, "the generation ended with finish_reason 'error'", status=502)
    return STRICT_FINISH.get(native, "stop")


def mistral_usage(native: Any) -> dict[str, Any] | None:
    if not isinstance(native, dict):
        return None
    details = native.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", native.get("num_cached_tokens"))
    return usage(
        int(native.get("prompt_tokens") or 0),
        int(native.get("completion_tokens") or 0),
        cached_tokens=int(cached or 0),
    )


def _flatten(container: dict[str, Any], strict: bool) -> None:
    """Reasoning models answer with content chunks: text becomes ``content``, thinking goes to
    ``content_blocks`` (non-strict) or away (strict)."""
    content = container.get("content")
    if not isinstance(content, list):
        return
    text = "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    container["content"] = text
    if strict:
        return
    blocks = []
    for chunk in content:
        if isinstance(chunk, dict) and chunk.get("type") == "thinking":
            thinking = chunk.get("thinking")
            if isinstance(thinking, list):
                thinking = "".join(t.get("text", "") for t in thinking if isinstance(t, dict))
            blocks.append({"type": "thinking", "thinking": thinking or ""})
    if text:
        blocks.append({"type": "text", "text": text})
    container["content_blocks"] = blocks


def chat_response(data: dict[str, Any], strict: bool) -> dict[str, Any]:
    data["provider"] = NAME
    for choice in data.get("choices") or ():
        choice["finish_reason"] = finish_reason(choice.get("finish_reason"), strict)
        message = choice.get("message")
        if isinstance(message, dict):
            _flatten(message, strict)
            if message.get("tool_calls") and not message.get("content"):
                message["content"] = None  # Mistral sends "" beside tool calls; OpenAI sends null
    if "usage" in data:
        data["usage"] = mistral_usage(data["usage"])
    return data


def embed_response(data: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    data["provider"] = NAME
    if params.get("encoding_format") == "base64":
        for item in data.get("data") or ():
            vector = item.get("embedding")
            if isinstance(vector, list):
                item["embedding"] = encode_vector(vector, params)
    return data


def error_message(data: Any) -> tuple[str, Any, Any, Any]:
    """Message, type, param and code of a Mistral error body, with 422 details made readable."""
    if not isinstance(data, dict):
        return str(data), None, None, None
    nested = data.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else data
    message = error.get("message", error.get("detail"))
    if isinstance(message, dict) and "detail" in message:
        message = message["detail"]
    if isinstance(message, list):
        message = "; ".join(_detail(d) for d in message)
    elif not isinstance(message, str):
        message = orjson.dumps(message).decode() if message is not None else orjson.dumps(data).decode()
    return message, error.get("type"), error.get("param"), error.get("code")


def _detail(detail: Any) -> str:
    """``{"type": "extra_forbidden", "loc": ["body", "store"], "msg": "…"}`` becomes
    ``body.store: … (extra_forbidden)``."""
    if not isinstance(detail, dict):
        return str(detail)
    where = ".".join(str(p) for p in detail.get("loc") or ())
    text = str(detail.get("msg") or "invalid")
    kind = f" ({detail['type']})" if detail.get("type") else ""
    return f"{where}: {text}{kind}" if where else text + kind


# -- stream ---------------------------------------------------------------------------------------


class MistralStream:
    """Re-frames Mistral's OpenAI-like stream: ``provider`` on every chunk, finish reasons mapped,
    usage moved to OpenAI's usage chunk (only with ``include_usage``), errors as error events."""

    def __init__(self, params: Mapping[str, Any], strict: bool) -> None:
        self.strict = strict
        self.include_usage = wants_usage(params)
        self.errors = ChunkWriter(params, NAME)
        self.decoder = SSEDecoder()
        self.usage: dict[str, Any] | None = None
        self.head: dict[str, Any] = {}  # id, created and model for the usage chunk
        self.tool_ids: dict[str, int] = {}
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(e.data) for e in self.decoder.feed(data))

    def close(self) -> bytes:
        out = b"".join(self._event(e.data) for e in self.decoder.close())
        if not self.finished:
            self.finished = True
            out += self.errors.error("The provider closed the stream before it was complete", "stream_error")
        return out

    def _event(self, data: str) -> bytes:
        if self.finished:
            return b""
        if data.strip() == "[DONE]":
            self.finished = True
            return self._usage_chunk() + DONE
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail(f"unreadable stream event: {data[:200]}")
        if not isinstance(chunk, dict):
            return self._fail(f"unreadable stream event: {data[:200]}")
        if "error" in chunk or chunk.get("object") == "error":
            message, type_, _, code = error_message(chunk)
            return self._fail(message, type_, code)
        if chunk.get("usage"):
            self.usage = mistral_usage(chunk["usage"])
        chunk.pop("usage", None)
        if self.include_usage:
            chunk["usage"] = None
        chunk["provider"] = NAME
        self.head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or ():
            try:
                choice["finish_reason"] = finish_reason(choice.get("finish_reason"), self.strict)
            except ProviderError as exc:
                return self._fail(exc.message)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _flatten(delta, self.strict)
                self._index_tool_calls(delta)
        if not chunk.get("choices"):
            return b""  # a usage-only chunk: its usage is kept for the end
        return sse(chunk)

    def _index_tool_calls(self, delta: dict[str, Any]) -> None:
        # Mistral sends each call whole; the OpenAI index follows the order in which call ids
        # first appear, so parallel calls are 0, 1, … whatever index (if any) Mistral sent.
        for call in delta.get("tool_calls") or ():
            call_id = call.get("id")
            if call_id:
                call["index"] = self.tool_ids.setdefault(str(call_id), len(self.tool_ids))
                call.setdefault("type", "function")
            elif "index" not in call:
                call["index"] = max(len(self.tool_ids) - 1, 0)

    def _usage_chunk(self) -> bytes:
        if not self.include_usage or self.usage is None:
            return b""
        return sse(
            {
                **self.head,
                "object": "chat.completion.chunk",
                "provider": NAME,
                "choices": [],
                "usage": self.usage,
            }
        )

    def _fail(self, message: str, type_: Any = "stream_error", code: Any = None) -> bytes:
        self.finished = True
        return self.errors.error(message, type_, code)


# -- adapter --------------------------------------------------------------------------------------


class MistralAdapter(OpenAICompatibleAdapter):
    """Mistral's chat, embeddings and model list behind OpenAI's URL layout and bearer auth."""

    def __init__(self, base_url: str | None = None) -> None:
        super().__init__(SPEC, base_url)

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint is not Endpoint.COMPLETE  # Mistral has no /v1/completions

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        if endpoint is Endpoint.CHAT:
            body = chat_request(params)
        elif endpoint is Endpoint.EMBED:
            body = embed_request(params)
        else:
            return super().build_request(endpoint, target, params, raw_body)
        url = (target.custom_host or self.base_url) + PATHS[endpoint]
        return UpstreamRequest("POST", url, self._headers(target, json_body=True), orjson.dumps(body))

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the answer is not a JSON object")
        if endpoint is Endpoint.CHAT:
            return orjson.dumps(chat_response(data, strict))
        if endpoint is Endpoint.EMBED:
            return orjson.dumps(embed_response(data, params))
        data["provider"] = NAME
        return orjson.dumps(data)

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return MistralStream(params, strict) if endpoint is Endpoint.CHAT else None

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if data is None:
            text = body[:200].decode("utf-8", "replace").strip() or "empty body"
            return provider_error_body(NAME, f"Invalid response received from {NAME}: {text}")
        message, type_, param, code = error_message(data)
        return provider_error_body(NAME, message, type_, param, code)
