"""Cohere's v2 API (reference/providers.md §11, §12): ``/v2/chat`` and ``/v2/embed``.

Chat requests are rebuilt from the OpenAI shape (``top_p`` -> ``p``, ``stop`` -> ``stop_sequences``,
``tool_choice`` upper-cased, a named tool choice emulated); answers, the hyphenated SSE stream
(``message-start`` … ``message-end``) and errors are translated back. A generation that ends with
``ERROR`` or ``TIMEOUT`` is an error for the client, never a ``stop``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest, ProviderError
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest, openai_style_error
from wayport.providers.openai_shapes import (
    DONE,
    ChunkWriter,
    chat_completion,
    embedding_list,
    max_tokens_of,
    new_id,
    stop_list,
    text_of,
    usage,
)
from wayport.providers.sse import SSEDecoder

NAME = "cohere"
PUBLIC_BASE_URL = "https://api.cohere.com"
DEFAULT_INPUT_TYPE = "search_document"

# OpenAI request field -> Cohere's name for it, for the fields that pass as they are.
SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_p": "p",
    "top_k": "k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
# Cohere-only request fields a client may send through the OpenAI body.
COHERE_EXTRAS = ("documents", "citation_options", "safety_mode", "thinking", "priority", "strict_tools")

STRICT_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# Failed generations: Portkey reports them as "stop"; Wayport raises them (status for the client).
FAILED_FINISH = {"ERROR": 502, "TIMEOUT": 504}


# -- request --------------------------------------------------------------------------------------


def chat_request(params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """The ``/v2/chat`` body for an OpenAI chat request."""
    if (params.get("n") or 1) > 1:
        raise BadRequest("cohere answers one choice per request; 'n' greater than 1 is not supported")
    body: dict[str, Any] = {"model": params["model"], "messages": cohere_messages(params.get("messages"))}
    if stream:
        body["stream"] = True
    max_tokens = max_tokens_of(params)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    stop = stop_list(params.get("stop"))
    if stop:
        body["stop_sequences"] = stop
    for field, native in SAMPLING_FIELDS.items():
        if params.get(field) is not None:
            body[native] = params[field]
    tools = params.get("tools")
    if tools:
        body["tools"] = [_tool(t) for t in tools]
        if any(t.get("function", {}).get("strict") for t in tools):
            body["strict_tools"] = True
    _tool_choice(body, params.get("tool_choice"))
    response_format = _response_format(params.get("response_format"))
    if response_format is not None:
        body["response_format"] = response_format
    for field in COHERE_EXTRAS:
        if params.get(field) is not None:
            body[field] = params[field]
    return body


def cohere_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("cohere needs a non-empty 'messages' list")
    return [_message(m) for m in messages]


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": text_of(content)}
    if role == "user":
        return {"role": "user", "content": _user_content(content)}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        calls = message.get("tool_calls")
        if calls:
            out["tool_calls"] = [_tool_call(c) for c in calls]
            # Cohere keeps the text written before a tool call as the "tool plan".
            plan = message.get("tool_plan") or text_of(content)
            if plan:
                out["tool_plan"] = plan
        else:
            out["content"] = text_of(content)
        return out
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": str(message.get("tool_call_id") or ""),
            "content": text_of(content),
        }
    raise BadRequest(f"cohere does not accept messages with the role {role!r}")


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return text_of(content)
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            native: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and image.get("detail"):
                native["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": native})
        else:
            raise BadRequest(f"cohere does not accept '{kind}' content parts; send text or image_url")
    return parts


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    native = {k: function[k] for k in ("name", "description", "parameters") if k in function}
    return {"type": "function", "function": native}


def _tool_choice(body: dict[str, Any], choice: Any) -> None:
    if choice is None or choice == "auto" or not body.get("tools"):
        return
    if choice in ("required", "none"):
        body["tool_choice"] = choice.upper()
        return
    if isinstance(choice, dict):
        # Cohere has no named choice: offer only that tool and require a call.
        name = (choice.get("function") or {}).get("name")
        chosen = [t for t in body.get("tools", ()) if t["function"].get("name") == name]
        if not chosen:
            raise BadRequest(f"tool_choice names the function {name!r}, which is not in 'tools'")
        body["tools"] = chosen
        body["tool_choice"] = "REQUIRED"
        return
    raise BadRequest(f"cohere does not understand tool_choice {choice!r}")


def _response_format(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    return None


def embed_request(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/v2/embed`` body; ``input_type`` comes from the body, else the config, else
    ``search_document``."""
    raw = params.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("cohere embeddings take 'input' as a string or a list of strings (not token ids)")
    body: dict[str, Any] = {
        "model": params["model"],
        "texts": texts,
        "input_type": params.get("input_type") or options.get("input_type") or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if params.get("dimensions") is not None:
        body["output_dimension"] = params["dimensions"]
    if params.get("truncate") is not None:
        body["truncate"] = params["truncate"]
    return body


# -- response -------------------------------------------------------------------------------------


def finish_reason(native: str | None, strict: bool) -> str:
    """The OpenAI finish reason; a failed generation raises instead (both modes)."""
    native = native or "COMPLETE"
    if native in FAILED_FINISH:
        raise ProviderError(
            NAME, f"the generation ended with finish_reason {native}", status=FAILED_FINISH[native]
        )
    if not strict:
        return native
    return STRICT_FINISH.get(native, "stop")


def cohere_usage(native: Any) -> dict[str, Any]:
    """``tokens`` (what the model saw) over ``billed_units``; ``cached_tokens`` are part of the input."""
    native = native if isinstance(native, dict) else {}
    tokens = native.get("tokens") or {}
    billed = native.get("billed_units") or {}
    prompt = tokens.get("input_tokens", billed.get("input_tokens")) or 0
    completion = tokens.get("output_tokens", billed.get("output_tokens")) or 0
    return usage(int(prompt), int(completion), cached_tokens=int(native.get("cached_tokens") or 0))


def chat_response(data: Mapping[str, Any], params: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    native = data.get("message") or {}
    blocks = native.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [_openai_call(c) for c in native.get("tool_calls") or ()]
    message: dict[str, Any] = {"role": "assistant", "content": None if calls and not text else text}
    if calls:
        message["tool_calls"] = calls
    if not strict:
        thoughts = [native["tool_plan"]] if native.get("tool_plan") else []
        thoughts += [b.get("thinking", "") for b in blocks if b.get("type") == "thinking"]
        content_blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": t} for t in thoughts]
        if text:
            content_blocks.append({"type": "text", "text": text})
        message["content_blocks"] = content_blocks
    return chat_completion(
        id=str(data.get("id") or new_id()),
        model=str(params.get("model") or ""),  # Cohere's answer does not name the model
        message=message,
        finish_reason=finish_reason(data.get("finish_reason"), strict),
        usage=cohere_usage(data.get("usage")),
        provider=NAME,
    )


def _openai_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {
        "id": call.get("id") or new_id("call"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def embed_response(data: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    embeddings = data["embeddings"]
    vectors = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    billed = (data.get("meta") or {}).get("billed_units") or {}
    return embedding_list(vectors, params, provider=NAME, tokens=int(billed.get("input_tokens") or 0))


# -- stream ---------------------------------------------------------------------------------------


KNOWN_EVENTS = frozenset(
    {
        "message-start",
        "content-start",
        "content-delta",
        "content-end",
        "tool-plan-delta",
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        "citation-start",
        "citation-end",
        "message-end",
        "debug",
    }
)


class CohereStream:
    """Translates one ``/v2/chat`` SSE stream into OpenAI chunks as the events arrive."""

    def __init__(self, params: Mapping[str, Any], strict: bool) -> None:
        self.writer = ChunkWriter(params, NAME)
        self.strict = strict
        self.decoder = SSEDecoder()
        self.started = False
        self.finished = False
        # Cohere's tool-call index -> OpenAI's 0, 1, … in the order the calls start
        self.tool_index: dict[int, int] = {}

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(e.event, e.data) for e in self.decoder.feed(data))

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.writer.usage

    def close(self) -> bytes:
        out = b"".join(self._event(e.event, e.data) for e in self.decoder.close())
        if not self.finished:
            self.finished = True
            out += self.writer.error("The provider closed the stream before message-end", "stream_error")
        return out

    def _event(self, name: str | None, data: str) -> bytes:
        if self.finished or data.strip() == "[DONE]":
            return b""  # Cohere may or may not end with [DONE]; message-end already wrote ours
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail(f"unreadable stream event: {data[:200]}")
        if not isinstance(event, dict):
            return self._fail(f"unreadable stream event: {data[:200]}")
        kind = event.get("type") or name
        delta = event.get("delta") or {}
        message = delta.get("message") or {}
        if kind == "message-start":
            if event.get("id"):
                self.writer.id = str(event["id"])
            return self._start()
        if kind == "content-delta":
            content = message.get("content") or {}
            if content.get("text"):
                return self._start() + self.writer.chunk({"content": content["text"]})
            if content.get("thinking"):
                return self._thinking(content["thinking"])
            return b""
        if kind == "tool-plan-delta":
            return self._thinking(message.get("tool_plan") or "")
        if kind in ("tool-call-start", "tool-call-delta"):
            return self._tool_call(kind, event.get("index"), message.get("tool_calls"))
        if kind == "message-end":
            return self._end(delta)
        if kind in ("error", None) or (kind not in KNOWN_EVENTS and "message" in event):
            return self._fail(str(event.get("message") or data[:200]))
        return b""  # content-start/end, tool-call-end, citations, debug

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return self.writer.chunk({"role": "assistant", "content": ""})

    def _thinking(self, text: str) -> bytes:
        if self.strict or not text:
            return b""
        return self._start() + self.writer.chunk(
            {"content_blocks": [{"index": 0, "delta": {"thinking": text}}]}
        )

    def _tool_call(self, kind: str, index: Any, call: Any) -> bytes:
        if isinstance(call, list):  # the stream sends an object; tolerate a one-element list
            call = call[0] if call else {}
        call = call if isinstance(call, dict) else {}
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if kind == "tool-call-start":
            position = self.tool_index.setdefault(
                index if isinstance(index, int) else -1, len(self.tool_index)
            )
            fragment: dict[str, Any] = {
                "index": position,
                "id": call.get("id") or new_id("call"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": arguments},
            }
            return self._start() + self.writer.chunk({"tool_calls": [fragment]})
        if not arguments:
            return b""
        position = self.tool_index.get(index if isinstance(index, int) else -1, len(self.tool_index) - 1)
        fragment = {"index": max(position, 0), "function": {"arguments": arguments}}
        return self._start() + self.writer.chunk({"tool_calls": [fragment]})

    def _end(self, delta: Mapping[str, Any]) -> bytes:
        try:
            reason = finish_reason(delta.get("finish_reason"), self.strict)
        except ProviderError as exc:
            detail = delta.get("error")  # message-end may say what went wrong
            return self._fail(f"{exc.message}: {detail}" if detail else exc.message)
        self.finished = True
        out = self._start() + self.writer.chunk({}, reason)
        return out + self.writer.usage_chunk(cohere_usage(delta.get("usage"))) + DONE

    def _fail(self, message: str) -> bytes:
        self.finished = True
        return self.writer.error(message, "stream_error")


# -- adapter --------------------------------------------------------------------------------------


class CohereAdapter:
    """Cohere v2: chat (JSON and SSE) and embeddings, bearer auth. No legacy completions."""

    name = NAME
    default_model: str | None = "command-a-03-2025"

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or PUBLIC_BASE_URL).rstrip("/")

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in (Endpoint.CHAT, Endpoint.EMBED, Endpoint.MODELS, Endpoint.PROXY)

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        if endpoint is Endpoint.EMBED:
            path, body = "/v2/embed", embed_request(params, target.options)
        else:
            path, body = "/v2/chat", chat_request(params, stream=params.get("stream") is True)
        return UpstreamRequest(
            "POST", self._root(target) + path, self._headers(target, True), orjson.dumps(body)
        )

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        # The gateway strips its own "/v1"; Portkey's Cohere base URL ends in /v1, so add it back
        # unless the client already named the API version.
        if not path_and_query.startswith(("/v1/", "/v2/")):
            path_and_query = "/v1" + path_and_query
        return self._root(target) + path_and_query, self._headers(target, False)

    def _root(self, target: Target) -> str:
        root = (target.custom_host or self.base_url).rstrip("/")
        return root.removesuffix("/v2").removesuffix("/v1")

    def _headers(self, target: Target, json_body: bool) -> dict[str, str]:
        if target.api_key is None:
            raise BadRequest(
                "cohere needs an API key: 'api_key' in the config or 'Authorization: Bearer <key>'"
            )
        headers = {"authorization": "Bearer " + target.api_key.value}
        if json_body:
            headers["content-type"] = "application/json"
        return headers

    def translate_response(
        self, endpoint: Endpoint, body: bytes, params: Mapping[str, Any], strict: bool
    ) -> bytes:
        data = orjson.loads(body)
        if endpoint is Endpoint.EMBED:
            return orjson.dumps(embed_response(data, params))
        if endpoint is Endpoint.CHAT:
            return orjson.dumps(chat_response(data, params, strict))
        return body

    def stream_translator(
        self, endpoint: Endpoint, params: Mapping[str, Any], strict: bool
    ) -> StreamTranslator | None:
        return CohereStream(params, strict)

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        # {"id": …, "message": "…"} (or "message" alone) -> the OpenAI shape with the prefix
        return openai_style_error(NAME, body)
