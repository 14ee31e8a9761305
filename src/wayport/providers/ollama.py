"""Ollama's native API (reference/providers.md §10.1, §12): ``/api/chat`` and ``/api/embed``.

Requests move the sampling fields into ``options``, images into base64 ``images`` and JSON mode
into ``format``; ``stream`` is always sent because Ollama streams unless told not to. Answers
turn tool-call argument objects into JSON strings and ``done_reason: stop`` with tool calls into
``tool_calls``; the NDJSON stream becomes OpenAI SSE, and an ``{"error": …}`` line an error event.

``custom_host`` (or ``WAYPORT_BASE_URL_OLLAMA``) is the server root, ``http://host:11434``; a
trailing ``/v1`` or ``/api`` is accepted and stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wayport.errors import BadRequest
from wayport.providers.base import Endpoint, StreamTranslator, Target, UpstreamRequest, openai_style_error
from wayport.providers.openai_shapes import (
    DONE,
    ChunkWriter,
    chat_completion,
    embedding_list,
    max_tokens_of,
    new_id,
    parse_data_url,
    stop_list,
    text_of,
    usage,
)
from wayport.providers.sse import LineDecoder

NAME = "ollama"
PUBLIC_BASE_URL = "http://localhost:11434"

# OpenAI request field -> Ollama ``options`` field
OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# reasoning_effort -> think ("minimal" has no Ollama level; the lowest one is closest)
THINK_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


# -- request --------------------------------------------------------------------------------------


def chat_request(params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """The ``/api/chat`` body for an OpenAI chat request."""
    if (params.get("n") or 1) > 1:
        raise BadRequest("ollama answers one choice per request; 'n' greater than 1 is not supported")
    body: dict[str, Any] = {
        "model": params["model"],
        "messages": ollama_messages(params.get("messages")),
        "stream": stream,  # Ollama's default is true: always say which
    }
    native = params.get("options")
    options: dict[str, Any] = dict(native) if isinstance(native, dict) else {}
    for field, name in OPTION_FIELDS.items():
        if params.get(field) is not None:
            options[name] = params[field]
    max_tokens = max_tokens_of(params)
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = stop_list(params.get("stop"))
    if stop:
        options["stop"] = stop
    if options:
        body["options"] = options
    response_format = params.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            body["format"] = "json"
        elif response_format.get("type") == "json_schema":
            body["format"] = (response_format.get("json_schema") or {}).get("schema") or "json"
    tools = _tools(params.get("tools"), params.get("tool_choice"))
    if tools:
        body["tools"] = tools
    think = _think(params)
    if think is not None:
        body["think"] = think
    if params.get("keep_alive") is not None:
        body["keep_alive"] = params["keep_alive"]
    return body


def ollama_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("ollama needs a non-empty 'messages' list")
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results
    out = []
    for message in messages:
        out.append(_message(message, names))
    return out


def _message(message: Mapping[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": text_of(content)}
    if role == "user":
        out: dict[str, Any] = {"role": "user", "content": text_of(content)}
        images = _images(content)
        if images:
            out["images"] = images
        return out
    if role == "assistant":
        out = {"role": "assistant", "content": text_of(content)}
        calls = message.get("tool_calls")
        if calls:
            out["tool_calls"] = [_tool_call(i, c, names) for i, c in enumerate(calls)]
        return out
    if role == "tool":
        call_id = str(message.get("tool_call_id") or "")
        out = {"role": "tool", "content": text_of(content), "tool_call_id": call_id}
        if call_id in names:
            out["tool_name"] = names[call_id]
        return out
    raise BadRequest(f"ollama does not accept messages with the role {role!r}")


def _images(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    images = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "image_url":
            continue
        image = part.get("image_url")
        url = str(image.get("url") if isinstance(image, dict) else image)
        parsed = parse_data_url(url)
        if parsed is None:
            # Ollama cannot fetch URLs and an adapter does no I/O: say so instead of dropping it.
            raise BadRequest("ollama takes images as base64 data URLs (data:image/...;base64,...), not links")
        images.append(parsed[1])
    return images


def _tool_call(index: int, call: Mapping[str, Any], names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") or {}
    name = function.get("name")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest(f"the arguments of tool call {call.get('id')!r} are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise BadRequest(f"the arguments of tool call {call.get('id')!r} must be a JSON object")
    out: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    if call.get("id"):
        out["id"] = str(call["id"])
        names[str(call["id"])] = str(name)
    return out


def _tools(tools: Any, choice: Any) -> list[dict[str, Any]]:
    """Ollama has no tool_choice: ``none`` sends no tools, a named choice sends only that tool."""
    if not tools or choice == "none":
        return []
    out: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") or {}
        native = {k: function[k] for k in ("name", "description", "parameters") if k in function}
        out.append({"type": "function", "function": native})
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out = [t for t in out if t["function"].get("name") == name]
        if not out:
            raise BadRequest(f"tool_choice names the function {name!r}, which is not in 'tools'")
    return out


def _think(params: Mapping[str, Any]) -> Any:
    if params.get("think") is not None:
        return params["think"]
    effort = params.get("reasoning_effort")
    if effort is None:
        return None
    if effort == "none":
        return False
    return THINK_LEVELS.get(str(effort), True)


def embed_request(params: Mapping[str, Any]) -> dict[str, Any]:
    raw = params.get("input")
    if not (isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw))):
        raise BadRequest("ollama embeddings take 'input' as a string or a list of strings (not token ids)")
    body: dict[str, Any] = {"model": params["model"], "input": raw}
    if params.get("dimensions") is not None:
        body["dimensions"] = params["dimensions"]
    for field in ("truncate", "keep_alive", "options"):
        if params.get(field) is not None:
            body[field] = params[field]
    return body


# -- response -------------------------------------------------------------------------------------


def finish_reason(done_reason: str | None, has_tool_calls: bool, strict: bool) -> str:
    # Ollama reports "stop" after a tool call; its own /v1 shim says "tool_calls" then, in both modes.
    if has_tool_calls and done_reason in (None, "", "stop"):
        return "tool_calls"
    if not strict:
        return done_reason or "stop"
    return "length" if done_reason == "length" else "stop"


def ollama_usage(data: Mapping[str, Any]) -> dict[str, Any]:
    # Both counts are omitempty upstream (absent when zero, or when the prompt was cached).
    return usage(int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0))


def openai_tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or ():
        function = call.get("function") or {}
        arguments = function.get("arguments")
        out.append(
            {
                "id": str(call.get("id") or new_id("call")),
                "type": "function",
                "function": {
                    "name": function.get("name"),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments if arguments is not None else {}).decode(),
                },
            }
        )
    return out


def chat_response(data: Mapping[str, Any], params: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    native = data.get("message") or {}
    text = native.get("content") or ""
    calls = openai_tool_calls(native.get("tool_calls"))
    message: dict[str, Any] = {"role": "assistant", "content": None if calls and not text else text}
    if calls:
        message["tool_calls"] = calls
    if not strict:
        blocks: list[dict[str, Any]] = []
        if native.get("thinking"):
            blocks.append({"type": "thinking", "thinking": native["thinking"]})
        if text:
            blocks.append({"type": "text", "text": text})
        message["content_blocks"] = blocks
    return chat_completion(
        id=new_id(),  # Ollama's answers carry no id
        model=str(data.get("model") or params.get("model") or ""),
        message=message,
        finish_reason=finish_reason(data.get("done_reason"), bool(calls), strict),
        usage=ollama_usage(data),
        provider=NAME,
    )


def embed_response(data: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    tokens = int(data.get("prompt_eval_count") or 0)
    model = str(data.get("model") or params.get("model") or "")
    return embedding_list(data["embeddings"], params, provider=NAME, tokens=tokens, model=model)


# -- stream ---------------------------------------------------------------------------------------


class OllamaStream:
    """Translates one NDJSON ``/api/chat`` stream into OpenAI chunks line by line."""

    def __init__(self, params: Mapping[str, Any], strict: bool) -> None:
        self.writer = ChunkWriter(params, NAME)
        self.strict = strict
        self.lines = LineDecoder()
        self.started = False
        self.finished = False
        self.tool_calls = 0

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._line(line) for line in self.lines.feed(data))

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.writer.usage

    def close(self) -> bytes:
        out = b"".join(self._line(line) for line in self.lines.close())
        if not self.finished:
            self.finished = True
            out += self.writer.error("The provider closed the stream before it was done", "stream_error")
        return out

    def _line(self, line: bytes) -> bytes:
        if self.finished:
            return b""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            return self._fail(f"unreadable stream line: {line[:200].decode('utf-8', 'replace')}")
        if not isinstance(data, dict):
            return self._fail(f"unreadable stream line: {line[:200].decode('utf-8', 'replace')}")
        if "error" in data:
            error = data["error"]
            return self._fail(error if isinstance(error, str) else orjson.dumps(error).decode())
        out = self._start()
        message = data.get("message") or {}
        if message.get("thinking") and not self.strict:
            blocks = [{"index": 0, "delta": {"thinking": message["thinking"]}}]
            out += self.writer.chunk({"content_blocks": blocks})
        if message.get("content"):
            out += self.writer.chunk({"content": message["content"]})
        calls = openai_tool_calls(message.get("tool_calls"))
        if calls:
            # Ollama sends each call whole, so one fragment carries id, name and arguments.
            fragments = [{"index": self.tool_calls + i, **call} for i, call in enumerate(calls)]
            self.tool_calls += len(calls)
            out += self.writer.chunk({"tool_calls": fragments})
        if data.get("done"):
            self.finished = True
            reason = finish_reason(data.get("done_reason"), self.tool_calls > 0, self.strict)
            out += self.writer.chunk({}, reason) + self.writer.usage_chunk(ollama_usage(data)) + DONE
        return out

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return self.writer.chunk({"role": "assistant", "content": ""})

    def _fail(self, message: str) -> bytes:
        self.finished = True
        return self.writer.error(message, "stream_error")


# -- adapter --------------------------------------------------------------------------------------


class OllamaAdapter:
    """Ollama's native chat (JSON and NDJSON) and embeddings. No key locally; a configured key
    (ollama.com) is sent as a bearer token."""

    name = NAME
    default_model: str | None = None

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or PUBLIC_BASE_URL).rstrip("/")

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in (Endpoint.CHAT, Endpoint.EMBED, Endpoint.MODELS, Endpoint.PROXY)

    def build_request(
        self, endpoint: Endpoint, target: Target, params: Mapping[str, Any], raw_body: bytes | None
    ) -> UpstreamRequest:
        if not params.get("model"):
            raise BadRequest("ollama needs a model: set 'model' in the body or in override_params")
        if endpoint is Endpoint.EMBED:
            path, body = "/api/embed", embed_request(params)
        else:
            path, body = "/api/chat", chat_request(params, stream=params.get("stream") is True)
        return UpstreamRequest(
            "POST", self._root(target) + path, self._headers(target, True), orjson.dumps(body)
        )

    def proxy_request(
        self, target: Target, method: str, path_and_query: str, body: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        # Native paths (/api/tags, …) go as they are; anything else to the OpenAI shim (/v1/models).
        if not path_and_query.startswith("/api/"):
            path_and_query = "/v1" + path_and_query
        return self._root(target) + path_and_query, self._headers(target, False)

    def _root(self, target: Target) -> str:
        root = (target.custom_host or self.base_url).rstrip("/")
        return root.removesuffix("/v1").removesuffix("/api")

    @staticmethod
    def _headers(target: Target, json_body: bool) -> dict[str, str]:
        headers = {"content-type": "application/json"} if json_body else {}
        if target.api_key is not None:
            headers["authorization"] = "Bearer " + target.api_key.value
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
        return OllamaStream(params, strict)

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
        # {"error": "model \"x\" not found, try pulling it first"} (and the /v1 shim's object form)
        return openai_style_error(NAME, body)
