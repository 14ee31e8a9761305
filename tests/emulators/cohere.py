"""An emulator of Cohere's v2 API (reference/providers.md §11, §12): ``POST /v2/chat`` (JSON, and
SSE with ``event:`` lines and hyphenated event types), ``POST /v2/embed`` and ``GET /v1/models``,
with Cohere's error shape ``{"id", "message"}`` and bearer auth.

It checks requests the way the API does where a translation could go wrong (unknown fields, roles,
``p``/``k`` ranges, at most five stop sequences, upper-case ``tool_choice``, tool results that
answer an earlier call, no ``json_schema`` together with tools, ``input_type`` for v3+ embedding
models) and answers deterministically: ``"Echo: "`` and the last user text. With tools (and the
last turn from the user) it calls up to two of them, with a tool plan; with ``thinking`` it thinks
first; with ``response_format`` it answers JSON.

Knobs: ``finish_reason`` forces the next answers' finish reason (e.g. ``"ERROR"``),
``cached_tokens`` is reported in usage, ``send_done`` ends streams with ``data: [DONE]``.
Faults (``inject``): a status with a Cohere error body and headers; a stream cut after
``stream_events`` events; a ``Fault`` with status 200 and a ``json`` body ends a stream after
``stream_events`` events with ``message-end`` ``finish_reason: ERROR`` and that body's message.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.server import Fault, Recorded, ServerThread

API_KEY = "co-emulator-key"
THINKING = "Let me think about that."
TOOL_PLAN = "I will call the tools."
PROMPT_OVERHEAD = 10  # tokens Cohere adds around the prompt; billed_units leaves them out

CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
    }
)
MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "tool_plan", "citations"},
    "tool": {"role", "content", "tool_call_id"},
}
EMBED_FIELDS = frozenset(
    {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension", "truncate"}
)


class InvalidRequest(Exception):
    pass


def error_body(message: str) -> dict[str, Any]:
    return {"id": "2f8e5c1a-emu", "message": message}


def words(text: str) -> int:
    return max(1, len(text.split()))


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("invalid request: body must be a JSON object")
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        raise InvalidRequest(f"invalid request: unknown field: parameter {unknown[0]} is not a valid field")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("invalid request: model must be specified")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("invalid request: messages must contain at least one message")
    if "p" in body and not 0.01 <= body["p"] <= 0.99:
        raise InvalidRequest("invalid request: p must be between 0.01 and 0.99")
    if "k" in body and not 0 <= body["k"] <= 500:
        raise InvalidRequest("invalid request: k must be between 0 and 500")
    if "temperature" in body and body["temperature"] < 0:
        raise InvalidRequest("invalid request: temperature must be non-negative")
    if len(body.get("stop_sequences") or ()) > 5:
        raise InvalidRequest("invalid request: stop_sequences can have at most 5 items")
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        raise InvalidRequest(
            f"invalid request: tool_choice must be REQUIRED or NONE, got {body['tool_choice']}"
        )
    if body.get("tool_choice") and not body.get("tools"):
        raise InvalidRequest("invalid request: tool_choice requires tools")
    response_format = body.get("response_format")
    if response_format is not None:
        if response_format.get("type") not in ("text", "json_object"):
            raise InvalidRequest("invalid request: response_format.type must be text or json_object")
        if response_format.get("json_schema") and body.get("tools"):
            raise InvalidRequest("invalid request: json_schema cannot be used together with tools")
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            raise InvalidRequest("invalid request: each tool must be a function with a name")
        extra = set(function) - {"name", "description", "parameters"}
        if extra:
            raise InvalidRequest(
                f"invalid request: unknown field: parameter {sorted(extra)[0]} is not a valid field"
            )
    _validate_messages(messages)


def _validate_messages(messages: list[Any]) -> None:
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in MESSAGE_FIELDS:
            raise InvalidRequest(
                f"invalid request: messages[{i}].role must be system, user, assistant or tool"
            )
        extra = set(message) - MESSAGE_FIELDS[role]
        if extra:
            field = f"messages[{i}].{sorted(extra)[0]}"
            raise InvalidRequest(f"invalid request: unknown field: parameter {field} is not a valid field")
        content = message.get("content")
        if role == "user":
            if isinstance(content, list):
                for part in content:
                    _validate_part(part)
            elif not isinstance(content, str):
                raise InvalidRequest("invalid request: message must be at least 1 token long")
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                if not call.get("id") or call.get("type") != "function" or not function.get("name"):
                    raise InvalidRequest(f"invalid request: messages[{i}].tool_calls need id, type and name")
                try:
                    orjson.loads(function.get("arguments") or "")
                except (orjson.JSONDecodeError, TypeError):
                    raise InvalidRequest(
                        f"invalid request: messages[{i}] tool call arguments must be JSON"
                    ) from None
                call_ids.add(call["id"])
            if not message.get("tool_calls") and not text_of(content):
                raise InvalidRequest(f"invalid request: messages[{i}] must have content or tool_calls")
        if role == "tool" and message.get("tool_call_id") not in call_ids:
            raise InvalidRequest(
                f"invalid request: messages[{i}].tool_call_id {message.get('tool_call_id')!r} "
                "does not match any tool call"
            )


def _validate_part(part: Any) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url")
        if isinstance(url, str) and url.startswith(("https://", "data:image/")):
            return
        raise InvalidRequest("invalid request: image_url.url must be a data URL or an https URL")
    raise InvalidRequest(f"invalid request: unsupported content type {kind!r}")


def answer(body: dict[str, Any], finish_override: str | None, cached_tokens: int) -> dict[str, Any]:
    """The non-streaming answer for a valid request."""
    messages = body["messages"]
    last = messages[-1]
    tools = body.get("tools") or []
    blocks: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        blocks.append({"type": "thinking", "thinking": THINKING})
    message: dict[str, Any] = {"role": "assistant"}
    if tools and last["role"] == "user" and body.get("tool_choice") != "NONE":
        message["tool_plan"] = TOOL_PLAN
        message["tool_calls"] = [
            {
                "id": f"{t['function']['name']}_{hashlib.sha1(str(i).encode()).hexdigest()[:12]}",
                "type": "function",
                "function": {"name": t["function"]["name"], "arguments": orjson.dumps({"q": i}).decode()},
            }
            for i, t in enumerate(tools[:2])
        ]
        finish = "TOOL_CALL"
        output = words(TOOL_PLAN) + 4 * len(message["tool_calls"])
    else:
        source = text_of(last.get("content")) if last["role"] != "tool" else "tool results"
        text = "Echo: " + source
        if body.get("response_format"):
            text = orjson.dumps({"echo": source}).decode()
        finish = "COMPLETE"
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and words(text) > max_tokens:
            text, finish = " ".join(text.split()[:max_tokens]), "MAX_TOKENS"
        for stop in body.get("stop_sequences") or ():
            if stop in text:
                text, finish = text[: text.index(stop)], "STOP_SEQUENCE"
        blocks.append({"type": "text", "text": text})
        output = words(text)
    message["content"] = blocks
    billed_input = sum(words(text_of(m.get("content")) or "x") for m in messages)
    return {
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
        "finish_reason": finish_override or finish,
        "message": message,
        "usage": {
            "billed_units": {"input_tokens": billed_input, "output_tokens": output},
            "tokens": {"input_tokens": billed_input + PROMPT_OVERHEAD, "output_tokens": output},
            "cached_tokens": min(cached_tokens, billed_input + PROMPT_OVERHEAD),
        },
    }


def stream_events(done: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of an answer, in Cohere's order."""
    message = done["message"]
    events: list[dict[str, Any]] = [
        {
            "type": "message-start",
            "id": done["id"],
            "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}},
        }
    ]
    for index, block in enumerate(message.get("content") or ()):
        kind = block["type"]
        events.append(
            {
                "type": "content-start",
                "index": index,
                "delta": {"message": {"content": {"type": kind, kind: ""}}},
            }
        )
        pieces = block[kind].split(" ")
        for n, piece in enumerate(pieces):
            text = piece if n == 0 else " " + piece
            events.append(
                {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: text}}}}
            )
        events.append({"type": "content-end", "index": index})
    if message.get("tool_plan"):
        for n, piece in enumerate(message["tool_plan"].split(" ")):
            plan = piece if n == 0 else " " + piece
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan}}})
    for index, call in enumerate(message.get("tool_calls") or ()):
        arguments = call["function"]["arguments"]
        head = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": head}}})
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            fragment = {"function": {"arguments": piece}}
            events.append(
                {"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": fragment}}}
            )
        events.append({"type": "tool-call-end", "index": index})
    usage = {k: v for k, v in done["usage"].items() if k != "cached_tokens"}
    usage["cached_tokens"] = done["usage"]["cached_tokens"]
    events.append({"type": "message-end", "delta": {"finish_reason": done["finish_reason"], "usage": usage}})
    return events


def embed_vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dims)]


class CohereEmulator:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.finish_reason: str | None = None
        self.cached_tokens = 0
        self.send_done = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v2/chat", self.chat)
        app.router.add_post("/v2/embed", self.embed)
        app.router.add_get("/v1/models", self.models)
        self.server = ServerThread(app)

    @property
    def base_url(self) -> str:
        return self.server.url

    def start(self) -> CohereEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.finish_reason = None
        self.cached_tokens = 0
        self.send_done = False

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- plumbing --------------------------------------------------------------------------

    async def _preamble(self, request: web.Request) -> tuple[Any, Fault | None] | web.Response:
        raw = await request.read()
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), raw)
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return web.json_response(error_body("invalid api token"), status=401)
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            if fault.text is not None:
                return web.Response(status=fault.status, text=fault.text, headers=fault.headers)
            body = fault.json if fault.json is not None else error_body("internal server error")
            return web.json_response(body, status=fault.status, headers=fault.headers)
        try:
            return orjson.loads(raw), fault
        except orjson.JSONDecodeError:
            return web.json_response(error_body("invalid request: body is not valid JSON"), status=400)

    # -- endpoints -------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, fault = pre
        try:
            validate_chat(body)
        except InvalidRequest as exc:
            return web.json_response(error_body(str(exc)), status=400)
        done = answer(body, self.finish_reason, self.cached_tokens)
        if body.get("stream"):
            return await self._stream(request, stream_events(done), fault)
        return web.json_response(done, headers={"x-trace-id": "trace-emu"})

    async def _stream(
        self, request: web.Request, events: list[dict[str, Any]], fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "x-trace-id": "trace-emu"}
        )
        await response.prepare(request)
        limit = fault.stream_events if fault is not None else None
        for i, event in enumerate(events):
            if fault is not None and limit is not None and i >= limit:
                if fault.stall_s:
                    await asyncio.sleep(fault.stall_s)
                if fault.cut and request.transport is not None:
                    request.transport.abort()
                    return response
                if fault.json is not None:
                    message = fault.json.get("message", "internal error")
                    failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}
                    await response.write(b"event: message-end\ndata: " + orjson.dumps(failed) + b"\n\n")
                break
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        if self.send_done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embed(self, request: web.Request) -> web.Response:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, _ = pre
        unknown = sorted(set(body) - EMBED_FIELDS)
        if unknown:
            return web.json_response(
                error_body(f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"),
                400,
            )
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return web.json_response(error_body("invalid request: texts must be a list of strings"), 400)
        model = str(body.get("model") or "")
        if not body.get("input_type") and "v2" not in model:
            return web.json_response(
                error_body("invalid request: valid input_type must be provided with the provided model"), 400
            )
        types = body.get("embedding_types") or ["float"]
        dims = int(body.get("output_dimension") or 8)
        vectors = [embed_vector(t, dims) for t in texts]
        return web.json_response(
            {
                "id": "e5e1-emu",
                "texts": texts,
                "embeddings": {kind: vectors for kind in types},
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"input_tokens": sum(words(t) for t in texts)},
                },
                "response_type": "embeddings_by_type",
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), b"")
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return web.json_response(error_body("invalid api token"), status=401)
        return web.json_response({"models": [{"name": "command-a-03-2025", "endpoints": ["chat"]}]})
